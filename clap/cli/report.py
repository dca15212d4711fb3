"""`clap report merge`: many evaluation report JSONs -> one flat table (CSV + Markdown);
`clap report claims`: the paper's claims side by side with what one report measured."""

from __future__ import annotations

import argparse
from pathlib import Path

from clap.options import NAME, PATH


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="work with evaluation reports", description=__doc__.splitlines()[0])
    rsub = p.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    m = rsub.add_parser("merge", help="merge report JSONs into one table: a row per (report, model)")
    m.add_argument("reports", nargs="+", type=PATH, help="report JSON files (e.g. eval_report/*.json)")
    m.add_argument("--out", required=True, type=PATH,
                   help="path without suffix: writes OUT.csv and OUT.md (a folder: merged.csv, merged.md in it)")
    m.set_defaults(run=run)
    c = rsub.add_parser("claims", help="the paper's claims against one report (reproduces / does not / cannot tell)")
    c.add_argument("report", type=PATH,
                   help="a report JSON with statistics (clap eval with CLIP, CLAP and Im.Aug; clap demo)")
    c.add_argument("--model", default="CLAP", type=NAME, help="the adapter the claims are about")
    c.add_argument("--other", default="Im.Aug", type=NAME, help="the adapter it should beat")
    c.set_defaults(run=run_claims)


def run(args: argparse.Namespace) -> int:
    from clap.evaluation.output.merge import merge_reports, to_csv, to_markdown
    from clap.fileio import write_text_atomic

    columns, rows = merge_reports(args.reports)
    out = Path(args.out)
    if args.out.endswith(("/", "\\")) or out.is_dir():  # a folder: the table goes inside it
        out = out / "merged"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".csv"), to_csv(columns, rows))
    write_text_atomic(out.with_suffix(".md"), to_markdown(columns, rows))
    print(f"{len(rows)} rows x {len(columns)} columns: {out.with_suffix('.csv')} and {out.with_suffix('.md')}")
    return 0


def run_claims(args: argparse.Namespace) -> int:
    from clap.evaluation.output.claims import claims_table
    from clap.evaluation.output.merge import read_report

    from clap.errors import ClapError

    report = read_report(Path(args.report))
    table = claims_table(report, args.model, args.other)
    if table.count("\n") <= 2:
        raise ClapError(f"{args.report} holds none of the claims' statistics for '{args.model}' (zero-shot, few-shot "
                        "and attack differences to CLIP); give the report of `clap eval all` or `clap demo`")
    print(table, end="")
    return 0
