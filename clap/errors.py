"""The package's user-facing error: one line that says what is wrong and how to fix it."""


class ClapError(Exception):
    """A problem with the user's input or environment (bad file, missing weights, mismatch)."""


def first_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message as one line (cut to `limit` characters); its type name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
