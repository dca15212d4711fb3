"""The package's user-facing error: one line that says what is wrong and how to fix it."""


class ClapError(Exception):
    """A problem with the user's input or environment (bad file, missing weights, mismatch)."""
