"""The `clap` console script (and `python -m clap`): Ctrl-C at any moment, even while the subcommands import, ends
in one line and exit 130, and nothing that runs at exit (worker pools, temporary files) is interrupted."""

from __future__ import annotations

import signal
import sys


def run() -> int:
    try:
        from clap.cli.main import main

        code = main()
    except KeyboardInterrupt:
        print("clap: interrupted; the command had not started: nothing was written, rerun it", file=sys.stderr)
        code = 130
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(run())
