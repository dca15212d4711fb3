"""VL4AD in miniature on the embedded world: what the mask decoder, the OOD prompts, class merging and a CLAP
adapter change in pixel-wise anomaly segmentation, with intervals over scenes (and CLAP's training seeds).

    .venv/bin/python experiments/world_vl4ad/reproduce.py --out /tmp/world_vl4ad     # about 5 minutes, 2 cores

Steps: (1) render in-distribution training scenes (no anomaly) and test scenes (half with one object of a
held-out class), and a small validation render of single-object images for CLAP's alpha; (2) train the mask
decoder (experiments/configs/world_vl4ad.yaml) and 3 CLAP adapters (the demo's settings), in parallel; (3) choose
each CLAP adapter's alpha on the validation render; (4) `clap eval anomaly` on the test scenes with the decoder,
the world's 8 families merged and two generic outlier concepts that name no held-out class. The report, its
figure, the wall times and summary.md (the README's tables) go to --results.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from clap.data.scenes import read_scenes
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from clap.data_gen.world.scenes import render_scenes
from clap.evaluation.alpha import select_alpha
from clap.evaluation.anomaly import AnomalyOptions, evaluate_anomaly, merge_groups
from clap.evaluation.report import differences_table
from clap.evaluation.runner import AdapterSpec
from clap.fileio import write_text_atomic
from clap.training.parallel import available_cores, train_runs

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
OOD_PROMPTS = ("an unknown shape", "a strange object")  # generic: they name no held-out class
SHOWN = ("MaxLogit", "VL4AD", "OODPrompts", "Decoder", "DecoderEnsemble", "DecoderOODPrompts")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="working folder (scenes, adapters, report)")
    parser.add_argument("--summary-only", action="store_true", help="rebuild summary.md from --results alone")
    parser.add_argument("--results", default=str(RESULTS), help="where the report and summary.md are copied")
    parser.add_argument("--train-scenes", type=int, default=400)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--decoder-steps", type=int, default=3000)
    parser.add_argument("--clap-steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3, help="CLAP training seeds")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=available_cores())
    parser.add_argument("--image-types", nargs="+", default=None, help="the scenes' image types (default: all 8)")
    args = parser.parse_args(argv)
    if not (args.out or args.summary_only):
        parser.error("--out is required (unless --summary-only)")
    return args


def training_runs(args: argparse.Namespace, out: Path, seeds: list[int]) -> tuple[list, list[str]]:
    """The decoder and each CLAP seed as `clap.train_adapter` keywords (the decoder, the longest, first)."""
    quiet = {"enable_model_summary": False, "enable_progress_bar": False, "logger": False}
    runs = [("decoder", {"route": "segmentation", "out": str(out / "adapters" / "decoder"), "seed": 0,
                         "config": str(ROOT / "experiments" / "configs" / "world_vl4ad.yaml"),
                         "data": {"root": str(out / "scenes_train")}, "overwrite": True,
                         "trainer": {"max_steps": args.decoder_steps, **quiet,
                                     "default_root_dir": str(out / "runs" / "decoder")}})]
    clap = []
    for seed in seeds:
        folder = out / "adapters" / f"clap_seed{seed}"
        runs.append((f"clap_seed{seed}", {
            "route": "text", "out": str(folder), "seed": seed, "overwrite": True,
            "config": str(ROOT / "experiments" / "configs" / "world_clap.yaml"),
            "data": {"classes": "world", "batch_size": 32, "seed": seed},
            "trainer": {"max_steps": args.clap_steps, **quiet, "default_root_dir": str(out / "runs" / folder.name)}}))
        clap.append(str(folder))
    return runs, clap


def summary(report: dict, seconds: dict[str, float]) -> str:
    """The README's tables: the scores' pixel metrics per model, and CLAP - CLIP with its interval."""
    results = report["results"]["anomaly"]
    seeds = report["statistics"]["seeds"].get("anomaly", {})
    lines = ["| model | score | AUROC | AP | FPR95 |", "| --- | --- | --- | --- | --- |"]
    for model in ("CLIP", *seeds):
        if model in seeds:
            mean, std = seeds[model]["mean"]["mean"], seeds[model]["std"]["mean"]
        else:
            mean, std = results[model]["mean"], None
        for score in (s for s in SHOWN if s in mean):
            cells = [f"{100 * mean[score][m]:.1f}" + (f" ± {100 * std[score][m]:.1f}" if std else "")
                     for m in ("AUROC", "AP", "FPR95")]
            lines.append(f"| {model} | {score} | " + " | ".join(cells) + " |")
    differences = {"anomaly": {name: {k: v for k, v in by_metric.items() if k.split(" ")[0] in SHOWN}
                               for name, by_metric in report["statistics"]["differences"]["anomaly"].items()}}
    scenes = sum(report["dataset"]["scenes"].values())
    decoder = report["anomaly"]["decoder"]["config"]
    head = (f"# VL4AD in miniature on the embedded world\n\nTest scenes: {scenes} ({len(report['dataset']['scenes'])} "
            f"image types); training-free scores on the dense grid {report['anomaly']['dense_grid']} of the scene as "
            f"it is, the decoder on the scene enlarged {decoder['dense_scale']:g} times ({decoder['queries']} queries, "
            f"{decoder['mask_size']}-pixel masks); wall time: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) + ".\n")
    return (f"{head}\n## Pixel metrics (%; mean over image types; CLAP: mean ± std over seeds)\n\n"
            + "\n".join(lines) + "\n\n## CLAP - CLIP (points; 95% interval over scenes and seeds)\n\n"
            + differences_table(differences))


def write_summary(results: Path) -> str:
    """summary.md from the report and wall times in `results`."""
    text = summary(json.loads((results / "anomaly.json").read_text()),
                   json.loads((results / "seconds.json").read_text()))
    write_text_atomic(results / "summary.md", text)
    return text


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.summary_only:
        print(write_summary(Path(args.results)))
        return 0
    out, results, seconds = Path(args.out), Path(args.results), {}
    start = time.monotonic()
    spec = WorldSpec(image_types=tuple(args.image_types)) if args.image_types else None
    render_scenes(out / "scenes_train", args.train_scenes, seed=1, ood=False, spec=spec, progress=False)
    render_scenes(out / "scenes_test", args.test_scenes, seed=2, spec=spec, progress=False)
    render_world(out / "val", "domains", 4, 3, progress=False)
    seconds["render"] = time.monotonic() - start
    start = time.monotonic()
    seeds = list(range(args.seeds))
    runs, clap = training_runs(args, out, seeds)
    train_runs(runs, args.jobs, progress=False)
    select_alpha(clap, out / "val", progress=False)
    seconds["training"] = time.monotonic() - start
    start = time.monotonic()
    test = read_scenes(out / "scenes_test")
    options = AnomalyOptions(merge=merge_groups("families", test.classes), ood_prompts=OOD_PROMPTS)
    report = evaluate_anomaly(test, adapters=[AdapterSpec("CLAP", path, "auto") for path in clap], options=options,
                              decoder=out / "adapters" / "decoder", n_boot=args.n_boot, progress=False)
    report.save(out / "report", overwrite=True)
    seconds["evaluation"] = time.monotonic() - start
    results.mkdir(parents=True, exist_ok=True)
    for path in (out / "report").iterdir():
        shutil.copyfile(path, results / path.name)
    write_text_atomic(results / "seconds.json", json.dumps(seconds, indent=2) + "\n")
    print(write_summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
