"""Optional dependencies: a one-line error naming the extra to install, instead of an ImportError."""

from __future__ import annotations

import importlib.util

from clap.errors import ClapError

DISTRIBUTION = "clap-disentangle"


def require(extra: str, *modules: str, what: str) -> None:
    """Fail unless every module is importable; the message names `pip install 'clap-disentangle[extra]'`."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ClapError(f"{what} needs {', '.join(missing)}: pip install '{DISTRIBUTION}[{extra}]'")
