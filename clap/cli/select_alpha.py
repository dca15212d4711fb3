"""`clap select-alpha`: choose each adapter's inference alpha on validation data and record it."""

from __future__ import annotations

import argparse

from clap.cli.backbone_args import add_backbone_arguments, backbone_options
from clap.options import ALPHA, PATH, PRECISIONS, Device


def add_parser(sub) -> None:
    from clap.defaults import ALPHA_GRID
    from clap.evaluation.protocols.alpha import RULE

    p = sub.add_parser("select-alpha", help="choose adapters' inference alpha on validation data (no test labels)",
                       description=f"{__doc__.splitlines()[0]} Rule: {RULE}.")
    p.add_argument("adapters", nargs="+", type=PATH,
                   help="adapter folders; each gets `alpha` and `alpha_selection` written")
    p.add_argument("--val", required=True, type=PATH,
                   help="validation root/domain/class/image folder (never the test set)")
    p.add_argument("--alphas", type=ALPHA, nargs="+", default=list(ALPHA_GRID), help="the grid")
    add_backbone_arguments(p, "backbone (default: the embedded tiny CLIP)")
    p.add_argument("--cache", default=None, type=PATH, help="folder caching raw image features across runs")
    p.add_argument("--device", default="auto", type=Device(),
                   help="torch device: auto (default: CUDA when this machine has it, else the CPU), cpu, cuda, cuda:1")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the frozen encoders: fp32, bf16 or fp16 autocast (fp16: CUDA only); auto = fp16 on CUDA")
    p.add_argument("--ignore-classes", action="store_true", help="allow adapters trained for other classes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from clap.evaluation.protocols.alpha import select_alpha

    chosen = select_alpha(args.adapters, args.val, args.alphas, backbone_options(args), args.cache, args.device,
                           progress=not args.no_progress, ignore_classes=args.ignore_classes,
                           precision=args.precision)
    for path, selection in chosen.items():
        alpha = selection["alpha"]
        print(f"{path}: alpha {alpha:g} (validation mean zero-shot {100 * selection['scores'][f'{alpha:g}']:.1f}% "
              f"on {selection['validation_images']} images)")
    return 0
