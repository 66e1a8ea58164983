"""Every optimiser is a declaration (`ntkode.declaration`, docs/theory.md#state-space); theory reads it.

`get_method(spec)` accepts a built-in name, a path to a .toml declaration, a dict or a Method.
`METHODS` maps the built-in names to their Methods (loaded on first access).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

from ntkode.declaration import Hyper, Method, builtin, builtin_names, load_method


class _Builtins(Mapping):
    """The shipped methods by name, each parsed on first access."""

    def __getitem__(self, name: str) -> Method:
        if name not in builtin_names():
            raise KeyError(name)
        return builtin(name)

    def __iter__(self) -> Iterator[str]:
        return iter(builtin_names())

    def __len__(self) -> int:
        return len(builtin_names())


METHODS: Mapping[str, Method] = _Builtins()


def get_method(spec) -> Method:
    """The Method for a built-in name, a .toml path, a declaration dict or a Method (NtkodeError otherwise)."""
    return load_method(spec)


__all__ = ["Hyper", "METHODS", "Method", "get_method"]
