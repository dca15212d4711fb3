"""`clap report merge`: many evaluation report JSONs -> one flat table (CSV + Markdown);
`clap report claims`: the paper's claims side by side with what one report measured."""

from __future__ import annotations

import argparse
from pathlib import Path

from clap.options import NAME, PATH


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="work with evaluation reports", description=__doc__.splitlines()[0])
    rsub = p.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    m = rsub.add_parser("merge", help="merge report JSONs into one table: a row per (report, model); or the shards "
                        "of one evaluation into its report")
    m.add_argument("reports", nargs="+", type=PATH, help="report JSON files (e.g. eval_report/*.json), or every "
                   "shard's (e.g. eval_report/shard-*/zeroshot.json)")
    m.add_argument("--out", required=True, type=PATH,
                   help="path without suffix: writes OUT.csv and OUT.md (a folder: merged.csv, merged.md in it); "
                        "shards: the folder of the merged report")
    m.add_argument("--overwrite", action="store_true", help="shards: replace a merged report of the same task")
    m.set_defaults(run=run)
    c = rsub.add_parser("claims", help="the paper's claims against one report (reproduces / does not / cannot tell)")
    c.add_argument("report", type=PATH,
                   help="a report JSON with statistics (clap eval with CLIP, CLAP and Im.Aug; clap demo)")
    c.add_argument("--model", default="CLAP", type=NAME, help="the adapter the claims are about")
    c.add_argument("--other", default="Im.Aug", type=NAME, help="the adapter it should beat")
    c.set_defaults(run=run_claims)


def run(args: argparse.Namespace) -> int:
    from clap.evaluation.output.merge import is_shard_report, merge_reports, to_csv, to_markdown
    from clap.fileio import write_text_atomic

    if any(is_shard_report(Path(p)) for p in args.reports):
        return run_shards(args)
    columns, rows = merge_reports(args.reports)
    out = Path(args.out)
    if args.out.endswith(("/", "\\")) or out.is_dir():  # a folder: the table goes inside it
        out = out / "merged"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".csv"), to_csv(columns, rows))
    write_text_atomic(out.with_suffix(".md"), to_markdown(columns, rows))
    print(f"{len(rows)} rows x {len(columns)} columns: {out.with_suffix('.csv')} and {out.with_suffix('.md')}")
    return 0


def run_shards(args: argparse.Namespace) -> int:
    """The shards of one evaluation -> its report in --out, with the intervals of one run."""
    from clap.evaluation.pipeline.shards import merge_shards

    report = merge_shards(args.reports)
    json_path, md_path = report.save(args.out, overwrite=args.overwrite)
    print(report.markdown())
    print(f"{len(args.reports)} shards merged: {json_path} and {md_path}")
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
