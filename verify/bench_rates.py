"""`ntkode bench-rates` benchmark (placeholder until that work lands)."""
import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommand to the `ntkode` parser."""
