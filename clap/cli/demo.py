"""`clap demo`: the whole method on the embedded world, offline, end to end.

Renders an evaluation set (image types as domains) and Im.Aug training images, trains a CLAP adapter
(text route) and an Im.Aug adapter (image route) on the embedded tiny CLIP, evaluates every protocol
for CLIP, Im.Aug and CLAP, prints the comparison tables and writes the report.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

WORLD_CLAP_ALPHA = 0.5
WORLD_IMAUG_ALPHA = 0.5


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="end-to-end run on the embedded world, offline",
                       description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo_output", help="folder for data, adapters, logs and the report")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--images-per-class", type=int, default=20, help="evaluation images per class and domain")
    p.add_argument("--imaug-images-per-class", type=int, default=40, help="Im.Aug training images per class")
    p.add_argument("--clap-steps", type=int, default=3000)
    p.add_argument("--imaug-steps", type=int, default=1500)
    p.add_argument("--attack-images", type=int, default=30, help="images per domain attacked")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def _train(args_list: list[str]) -> None:
    from clap.training.cli import main as train

    train(args_list)


def train_adapters(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """Train the CLAP (text) and Im.Aug (image) adapters on the embedded backbone."""
    common = ["--seed_everything", str(args.seed), "--trainer.enable_model_summary", "false",
              "--trainer.enable_progress_bar", str(not args.no_progress).lower(), "--trainer.logger", "false"]
    adapters = {"CLAP": out / "adapters" / "clap", "Im.Aug": out / "adapters" / "imaug"}
    _train(common + ["--trainer.max_steps", str(args.clap_steps),
                     "--trainer.default_root_dir", str(out / "runs" / "clap"), "--data.classes", "world",
                     "--data.batch_size", "10", "--data.seed", str(args.seed),
                     "--model.inference_alpha", str(WORLD_CLAP_ALPHA), "--out", str(adapters["CLAP"])])
    _train(common + ["--trainer.max_steps", str(args.imaug_steps), "--trainer.default_root_dir",
                     str(out / "runs" / "imaug"), "--model", "ImAugModule", "--model.inference_alpha",
                     str(WORLD_IMAUG_ALPHA), "--data", "ImageDataModule", "--data.root", str(out / "data" / "imaug"),
                     "--data.batch_size", "32", "--data.seed", str(args.seed), "--out", str(adapters["Im.Aug"])])
    return adapters


def run(args: argparse.Namespace) -> int:
    from clap.cli.eval import TASKS, run_tasks
    from clap.evaluation.report import markdown, report_paths, write_report
    from clap.evaluation.runner import AdapterSpec, build_setup, protocol_info
    from clap.data_gen.world.export import render_world

    start = time.monotonic()
    for name in ("lightning.pytorch", "lightning.fabric"):  # keep the demo's output to its own steps
        logging.getLogger(name).setLevel(logging.WARNING)
    out = Path(args.out)
    progress = not args.no_progress
    print("1/4 rendering the world (evaluation domains and Im.Aug training images)")
    render_world(out / "data" / "eval", "domains", args.images_per_class, args.seed, progress=progress)
    render_world(out / "data" / "imaug", "image-route", args.imaug_images_per_class, args.seed + 1, progress=progress)
    print("2/4 training the CLAP (text) and Im.Aug (image) adapters")
    adapters = train_adapters(args, out)
    print("3/4 evaluating CLIP, Im.Aug and CLAP")
    specs = [AdapterSpec(name, str(path)) for name, path in adapters.items()]
    setup = build_setup(out / "data" / "eval", specs, progress=progress)
    eval_args = argparse.Namespace(shots=[1, 4, 8, 16], seeds=[0, 1, 2], protocol="pixel", seed=args.seed,
                                   attack_images=args.attack_images, out=str(out / "report"),
                                   alphas=[0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0])
    results = run_tasks(setup, TASKS[:-1], eval_args)
    if report_paths(out / "report", "demo")[0].exists():
        print(f"replacing the previous demo report in {out / 'report'}")
    run_info = {"seed": args.seed, "protocol": protocol_info(eval_args.protocol)}
    json_path, md_path = write_report(out / "report", "demo", setup.describe(), results, run_info)
    print("4/4 results\n")
    print(markdown(results))
    print(f"report: {json_path}, {md_path}; plots in {out / 'report'}; total {time.monotonic() - start:.0f} s")
    return 0
