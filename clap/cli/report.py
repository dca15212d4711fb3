"""`clap report merge`: many evaluation report JSONs -> one flat table (CSV + Markdown)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="work with evaluation reports", description=__doc__.splitlines()[0])
    rsub = p.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    m = rsub.add_parser("merge", help="merge report JSONs into one table: a row per (report, model)")
    m.add_argument("reports", nargs="+", help="report JSON files (e.g. eval_report/*.json)")
    m.add_argument("--out", required=True, help="output path without suffix: writes OUT.csv and OUT.md")
    m.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from clap.evaluation.merge import merge_reports, to_csv, to_markdown
    from clap.fileio import write_text_atomic

    columns, rows = merge_reports(args.reports)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".csv"), to_csv(columns, rows))
    write_text_atomic(out.with_suffix(".md"), to_markdown(columns, rows))
    print(f"{len(rows)} rows x {len(columns)} columns: {out.with_suffix('.csv')} and {out.with_suffix('.md')}")
    return 0
