"""`ntkode` subcommands of the theory work (placeholder until that work lands)."""
import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `ntkode` parser."""
