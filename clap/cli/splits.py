"""`clap splits`: seeded k-shot index files per domain and class of a root/domain/class/image dataset."""

from __future__ import annotations

import argparse

from clap.options import PATH, SEED, Count


def add_parser(sub) -> None:
    p = sub.add_parser("splits", help="write few-shot split index files", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, type=PATH, help="root/domain/class/image folder")
    p.add_argument("--out", required=True, type=PATH, help="folder for <domain>/<k>shot_seed<s>.txt and splits.json")
    p.add_argument("--shots", type=Count(), nargs="+", default=[1, 4, 8, 16, 32], help="images per class")
    p.add_argument("--seeds", type=SEED, nargs="+", default=[0, 1, 2], help="one split per seed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from clap.data.domains import scan_domain_dataset
    from clap.data.fewshot import write_fewshot_splits

    from clap.fileio import writable_folder

    writable_folder(args.out, outside=args.dataset)
    dataset = scan_domain_dataset(args.dataset)
    index = write_fewshot_splits(dataset, args.out, args.shots, args.seeds)
    print(f"wrote {len(dataset.domains) * len(args.shots) * len(args.seeds)} split files, index {index}")
    return 0
