"""`clap convert-reference`: import an authors' checkpoint (.pth) as a clap adapter folder."""

from __future__ import annotations

import argparse

from clap.cli.backbone_args import add_backbone_arguments, backbone_options
from clap.options import ALPHA, NAME, PATH


def add_parser(sub) -> None:
    p = sub.add_parser("convert-reference", help="import an authors' released checkpoint as an adapter",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=PATH, help="torch state dict with network_beta.* / network_psi.* keys")
    p.add_argument("out_dir", type=PATH, help="folder to write adapter_config.json + adapter_model.safetensors")
    p.add_argument("--route", choices=("text", "image"), default=None,
                   help="which sub-network to import (default: the one with a non-zero output projection)")
    p.add_argument("--alpha", type=ALPHA, default=1.0, help="default inference alpha to record")
    add_backbone_arguments(p, "backbone the checkpoint was trained on (recorded and checked)")
    p.add_argument("--dataset", default=None, type=NAME, help="dataset name to record")
    p.add_argument("--classes", nargs="*", type=NAME, default=None, help="class names to record")
    p.add_argument("--overwrite", action="store_true", help="replace an adapter already in OUT_DIR")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from clap.adapter.reference import convert_reference
    from clap.fileio import folder_lock, refuse_existing_adapter, writable_folder

    writable_folder(args.out_dir, "OUT_DIR")
    refuse_existing_adapter(args.out_dir, args.overwrite, "OUT_DIR")
    backbone = None
    if args.model:
        from clap.backbones.loading import load_backbone

        backbone = load_backbone(**backbone_options(args)).identity.to_dict()
    adapter = convert_reference(args.checkpoint, route=args.route, alpha=args.alpha, backbone=backbone,
                                classes=args.classes, dataset=args.dataset)
    with folder_lock(args.out_dir, "an adapter"):
        out = adapter.save_pretrained(args.out_dir)
    cfg = adapter.config
    print(f"wrote {cfg.route}-route adapter {cfg.in_dim}->{cfg.latent_dim}->{cfg.out_dim} to {out}")
    return 0
