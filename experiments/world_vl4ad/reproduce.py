"""VL4AD in miniature on the embedded world, like for like: each route (CLIP, CLAP) gets its own mask decoders,
trained on its own feature space, with 3 decoder seeds; pixel-wise anomaly segmentation with intervals over decoder
and CLAP training seeds and scenes, and the in-distribution mIoU beside every decoder row.

    .venv/bin/python experiments/world_vl4ad/reproduce.py --out /tmp/world_vl4ad   # 15 training runs: 56 min, 2 cores

Steps: (1) render in-distribution training scenes (no anomaly), test scenes (half with one object of a held-out
class) and a validation render of the 24 in-distribution classes alone (CLAP's alpha); (2) train 3 CLAP adapters
on the 24 in-distribution classes (the held-out shapes, the anomalies, are never named) and CLIP's decoders: 3
seeds with one class prompt and 3 trained on VL4AD's concept ensemble (each class the best of its concepts:
name, plural, synonym; `clap/prompts/presets/world_concepts.json`); (3) choose each CLAP adapter's alpha on the
validation render; (4) train CLAP's decoders behind each CLAP seed (its adapted dense features and class text, at
its alpha), one of each kind per seed; (5) `clap eval anomaly` on the test scenes with every decoder, the world's
families merged at test time (a separate variant) and two generic outlier concepts that name no held-out class.
The report, its figure, the wall times and summary.md (the README's tables) go to --results.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from clap.data_gen.world.scenes import render_scenes
from clap.evaluation.protocols.alpha import select_alpha
from clap.evaluation.pipeline.evaluate import evaluate
from clap.evaluation.output.report import differences_table
from clap.evaluation.statistics.stats import sample_std
from clap.fileio import write_text_atomic
from clap.prompts.classes import world_open_set
from clap.runtime import available_cores
from clap.training.parallel import train_runs

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
OOD_PROMPTS = ("an unknown shape", "a strange object")  # generic: they name no held-out class
SHOWN = ("MaxLogit", "VL4AD", "OODPrompts", "Decoder", "DecoderMerged", "DecoderConcepts", "DecoderConceptsMerged",
         "DecoderOODPrompts")
DECODER_KINDS = {"Decoder": None, "DecoderConcepts": "world"}  # one class prompt; VL4AD's concept ensemble
OPEN_SET_CLASSES = "open_set_classes.txt"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="working folder (scenes, adapters, report)")
    parser.add_argument("--summary-only", action="store_true", help="rebuild summary.md from --results alone")
    parser.add_argument("--results", default=str(RESULTS), help="where the report and summary.md are copied")
    parser.add_argument("--train-scenes", type=int, default=400)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--decoder-steps", type=int, default=3000)
    parser.add_argument("--clap-steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3, help="CLAP training seeds and decoder seeds per route and kind")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=available_cores())
    parser.add_argument("--image-types", nargs="+", default=None, help="the scenes' image types (default: all 8)")
    args = parser.parse_args(argv)
    if not (args.out or args.summary_only):
        parser.error("--out is required (unless --summary-only)")
    return args


QUIET = {"enable_model_summary": False, "enable_progress_bar": False, "logger": False}


def decoder_run(args: argparse.Namespace, out: Path, name: str, seed: int, data: dict) -> tuple[str, dict]:
    """One mask decoder as `clap.train_adapter` keywords (`data`: its kind's concepts and feature adapter)."""
    return name, {"route": "segmentation", "out": str(out / "adapters" / name), "seed": seed, "overwrite": True,
                  "config": str(ROOT / "experiments" / "configs" / "world_vl4ad.yaml"),
                  "data": {"root": str(out / "scenes_train"), **data},
                  "trainer": {"max_steps": args.decoder_steps, **QUIET, "default_root_dir": str(out / "runs" / name)}}


def first_runs(args: argparse.Namespace, out: Path, seeds: list[int]) -> tuple[list, list[str]]:
    """CLIP's decoders (every kind, every seed) and the CLAP adapters on the ID classes, longest first."""
    runs = [decoder_run(args, out, f"clip_{kind}_seed{seed}", seed, {"concepts": concepts})
            for kind, concepts in DECODER_KINDS.items() for seed in seeds]
    clap = []
    for seed in seeds:
        folder = out / "adapters" / f"clap_seed{seed}"
        runs.append((folder.name, {
            "route": "text", "out": str(folder), "seed": seed, "overwrite": True,
            "config": str(ROOT / "experiments" / "configs" / "world_clap.yaml"),
            "data": {"classes": str(out / OPEN_SET_CLASSES), "batch_size": 32, "seed": seed},
            "trainer": {"max_steps": args.clap_steps, **QUIET, "default_root_dir": str(out / "runs" / folder.name)}}))
        clap.append(str(folder))
    return runs, clap


def clap_decoder_runs(args: argparse.Namespace, out: Path, seeds: list[int], clap: list[str]) -> list:
    """CLAP's decoders: each CLAP seed's own, of every kind, on its adapted features."""
    return [decoder_run(args, out, f"clap_{kind}_seed{seed}", seed, {"concepts": concepts, "adapter": folder})
            for kind, concepts in DECODER_KINDS.items() for seed, folder in zip(seeds, clap)]


def _cells(mean: dict, std: dict | None, score: str) -> list[str]:
    return [f"{100 * mean[score][m]:.1f}" + (f" ± {100 * std[score][m]:.1f}" if std else "")
            for m in ("AUROC", "AP", "FPR95")]


def metric_rows(report: dict) -> list[str]:
    """Per model and score: AUROC, AP, FPR95 (CLIP's decoder rows: mean ± std over its decoder seeds; CLAP's: over
    its training seeds, each with its own decoders) and, for decoder rows, the ID mIoU of those decoders."""
    results, seeds = report["results"]["anomaly"], report["statistics"]["seeds"].get("anomaly", {})
    miou = miou_by_kind(report)
    lines = ["| model | score | AUROC | AP | FPR95 | ID mIoU |", "| --- | --- | --- | --- | --- | --- |"]
    for model in ("CLIP", *seeds):
        for score in SHOWN:
            if model in seeds:
                mean, std = seeds[model]["mean"]["mean"], seeds[model]["std"]["mean"]
            else:
                mean = results[model]["mean"]
                spread = report["results"]["anomaly_decoders"].get(model, {}).get("scores", {}).get(score)
                std = {score: {m: sample_std(v) for m, v in spread.items()}} if spread else None
            if score not in mean:
                continue
            kind = next((k for k in sorted(DECODER_KINDS, key=len, reverse=True) if score.startswith(k)), None)
            seg = miou.get(model, {}).get(kind)
            shown = f"{100 * np.mean(seg):.1f} ± {100 * sample_std(seg):.1f}" if seg else "-"
            lines.append(f"| {model} | {score} | " + " | ".join(_cells(mean, std, score)) + f" | {shown} |")
    return lines


def miou_by_kind(report: dict) -> dict[str, dict[str, list[float]]]:
    """{model or seed group: {decoder kind: [ID mIoU per decoder]}}."""
    out: dict = {}
    for model, found in report["results"]["anomaly_decoders"].items():
        for value, info in zip(found["miou"], report["anomaly"]["decoders"][model]):
            kind = "DecoderConcepts" if info["config"].get("concepts") else "Decoder"
            out.setdefault(model.split("#")[0], {}).setdefault(kind, []).append(value)
    return out


def summary(report: dict, seconds: dict[str, float]) -> str:
    """The README's tables: the scores' pixel metrics per model with the decoders' ID mIoU, and CLAP - CLIP with its
    interval."""
    differences = {"anomaly": {name: {k: v for k, v in by_metric.items() if k.split(" ")[0] in SHOWN}
                               for name, by_metric in report["statistics"]["differences"]["anomaly"].items()}}
    scenes = sum(report["dataset"]["scenes"].values())
    decoder = report["anomaly"]["decoders"]["CLIP"][0]["config"]
    per_route = {m: len(d) for m, d in report["anomaly"]["decoders"].items()}
    head = (f"# VL4AD in miniature on the embedded world, each route with its own decoders\n\nTest scenes: {scenes} "
            f"({len(report['dataset']['scenes'])} image types); training-free scores on the dense grid "
            f"{report['anomaly']['dense_grid']} of the scene as it is, the decoders on the scene enlarged "
            f"{decoder['dense_scale']:g} times ({decoder['queries']} queries, {decoder['mask_size']}-pixel masks); "
            "decoders per model: " + ", ".join(f"{m} {n}" for m, n in per_route.items()) + "; wall time: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) + ".\n")
    note = ("Decoder: one class prompt in training and scoring; DecoderConcepts: decoders trained and scored on the "
            "concept ensemble (no merging); ...Merged: the world's shape families merged at test time (each family "
            "holds one held-out shape, the anomaly: merging uses that knowledge); OOD prompts name no held-out class.")
    return (f"{head}\n## Pixel metrics (%; mean over image types; ± over decoder seeds for CLIP, over CLAP's training "
            f"seeds, each with its own decoders, for CLAP)\n\n{note}\n\n" + "\n".join(metric_rows(report))
            + "\n\n## CLAP - CLIP (points; 95% interval over scenes, CLAP's seeds and CLIP's decoder seeds)\n\n"
            + differences_table(differences))


def write_summary(results: Path) -> str:
    """summary.md from the report and wall times in `results`."""
    text = summary(json.loads((results / "anomaly.json").read_text()),
                   json.loads((results / "seconds.json").read_text()))
    write_text_atomic(results / "summary.md", text)
    return text


def render(args: argparse.Namespace, out: Path) -> None:
    """Training and test scenes, a validation render of the ID classes, and their class list."""
    spec = WorldSpec(image_types=tuple(args.image_types)) if args.image_types else None
    render_scenes(out / "scenes_train", args.train_scenes, seed=1, ood=False, spec=spec, progress=False)
    render_scenes(out / "scenes_test", args.test_scenes, seed=2, spec=spec, progress=False)
    render_world(out / "val", "domains", 4, 3, WorldSpec(classes=tuple(world_open_set())), progress=False)
    write_text_atomic(out / OPEN_SET_CLASSES, "\n".join(world_open_set()) + "\n")


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.summary_only:
        print(write_summary(Path(args.results)))
        return 0
    out, results, seconds = Path(args.out), Path(args.results), {}
    start = time.monotonic()
    render(args, out)
    seconds["render"] = time.monotonic() - start
    start = time.monotonic()
    seeds = list(range(args.seeds))
    runs, clap = first_runs(args, out, seeds)
    train_runs(runs, args.jobs, progress=False)
    select_alpha(clap, out / "val", progress=False)
    later = clap_decoder_runs(args, out, seeds, clap)
    train_runs(later, args.jobs, progress=False)
    seconds["training"] = time.monotonic() - start
    start = time.monotonic()
    decoders = [config["out"] for _, config in [*runs, *later] if config["route"] == "segmentation"]
    report = evaluate(out / "scenes_test", adapters={"CLAP": [f"{path}@auto" for path in clap]}, tasks="anomaly",
                      merge="families", ood_prompts=list(OOD_PROMPTS), decoder=decoders, n_boot=args.n_boot,
                      progress=False)
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
