"""`clap eval`: zero-shot, few-shot, attacks, disentanglement probes, t-SNE, alpha sweeps, OOD, openness, and
pixel-wise anomaly segmentation of scenes.

    clap eval all --dataset DATA --adapter CLAP=adapters/clap --adapter Im.Aug=adapters/imaug --out report
    clap eval anomaly --dataset SCENES --adapter CLAP=adapters/clap --merge families --out report

The command parses its options into `EvalOptions` and calls `clap.evaluate` (`clap.evaluation.pipeline.evaluate`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clap.cli.backbone_args import add_backbone_arguments, backbone_options
from clap.cli.option_flags import add_option_flags
from clap.errors import ClapError
from clap.evaluation.pipeline.tasks import CLOSED_SET, EvalOptions
from clap.evaluation.pipeline.tasks import TASKS as TASK_TABLE
from clap.options import PATH, Kind


class Adapter(Kind):
    """NAME=PATH[@ALPHA|@auto] (see `AdapterSpec`)."""

    def convert(self, value: Any):
        from clap.evaluation.inputs.setup import AdapterSpec

        try:
            return AdapterSpec.parse(value)
        except ClapError as e:
            raise ValueError(str(e)) from None


ADAPTER = Adapter()
# `all`: the closed-set ones; the open-world ones by name (the library's task table, not a copy of it)
TASKS = (*CLOSED_SET, "all", *(t for t in TASK_TABLE if t not in CLOSED_SET))


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate CLIP and adapters on a root/domain/class/image dataset",
                       description=__doc__.splitlines()[0])
    p.add_argument("task", choices=TASKS, help="the protocol; all = the closed-set ones (ood and openness by name)")
    p.add_argument("--dataset", required=True, type=PATH,
                   help="root/domain/class/image folder (anomaly: a scenes folder with label maps)")
    p.add_argument("--adapter", action="append", default=[], type=ADAPTER, metavar="NAME=PATH[@ALPHA|@auto]",
                   help="an adapter to compare with the plain backbone (repeatable); ALPHA overrides its recorded "
                        "alpha, 'auto' takes the one chosen on validation data (clap select-alpha); a NAME given "
                        "several times is one adapter trained with several seeds (reported as mean ± std)")
    add_backbone_arguments(p, "backbone (default: the embedded tiny CLIP)")
    p.add_argument("--out", default="eval_report", type=PATH, help="folder for <task>.json, <task>.md and plots")
    add_option_flags(p, EvalOptions)
    p.add_argument("--overwrite", action="store_true", help="replace a report of the same task in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(run=run, on_interrupt="no report was written; rerun the same command (--cache keeps features)")


def eval_options(args: argparse.Namespace) -> EvalOptions:
    """The library's options from the parsed command line (REPE's corpus defaults to the world's generator)."""
    values = {name: getattr(args, name) for name in EvalOptions.names() if hasattr(args, name)}
    values["progress"] = not args.no_progress
    if args.repe and args.captions is None:
        from clap.data_gen.world.export import world_captions

        values["captions"] = world_captions(args.dataset)
    return EvalOptions(**values)


def run(args: argparse.Namespace) -> int:
    from clap.evaluation.output.report import claim_report
    from clap.fileio import folder_lock, writable_folder

    if args.task == "anomaly":
        args.on_interrupt = "no report was written; rerun the same command"
    options = eval_options(args)
    out = writable_folder(args.out, outside=args.dataset)
    if options.shard is not None:  # every shard in a folder of its own under --out
        from clap.evaluation.inputs.shard import Shard

        out = out / Shard.parse(options.shard).name
    claim_report(out, args.task, args.overwrite)
    with folder_lock(out, "a report"):
        return _evaluate(args, options, out)


def _evaluate(args: argparse.Namespace, options: EvalOptions, out: Path) -> int:
    """Evaluate, then write and print the report."""
    from clap.evaluation.pipeline.evaluate import evaluate

    report = evaluate(args.dataset, backbone_options(args), args.adapter, args.task, options)
    json_path, md_path = report.save(out, overwrite=args.overwrite)
    print(report.markdown())
    negation = [name for name, m in report.setup["models"].items() if m.get("route") == "negation"]
    if negation and args.task != "ood":
        print(f"note: {', '.join(negation)}: CLIPN (negation) adapters are scored by `clap eval ood` only")
    skipped = sum(report.setup["dataset"].get("skipped", {}).values())
    if skipped:
        print(f"{skipped} unreadable images were skipped (listed per domain in the JSON report)")
    print(f"report: {json_path} and {md_path}")
    if options.shard is not None:
        shard = report.run["shard"]
        print(f"shard {shard['index']}/{shard['count']}: its records are in {out / shard['records']}; once every shard "
              f"has run: clap report merge {out.parent / 'shard-*-of-*' / json_path.name} --out {out.parent}")
    return 0
