"""The one exception type of ntkode: its message says what to change."""


class NtkodeError(ValueError):
    """Bad input or an impossible request; the CLI prints it as one line and exits 2."""
