"""The one exception type of ntkode; every layer (theory, numerics, verify) imports it from here."""
from __future__ import annotations


class NtkodeError(ValueError):
    """Bad input or an impossible request; the message says what to change.

    Library messages name the Python parameter (`widths`, `train`, ...); `param` records it so
    that the command line can name its own flag instead (`ntkode.verify.cli`). The CLI prints
    the error as one line and exits with status 2.
    """

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param

    def __reduce__(self):
        """Pickle with the parameter it names (errors raised in worker processes keep it)."""
        return (type(self), (str(self), self.param))
