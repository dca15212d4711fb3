"""`python -m clap`: the `clap` command."""

import sys

from clap.cli.entry import run

sys.exit(run())
