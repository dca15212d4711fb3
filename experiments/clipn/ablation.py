"""What CLIPN's "no" encoder needs, measured on the embedded world: the authors' trainable copy of the text
tower against the package's frozen tower + "no" prompts + head, and against the head alone; 3 training seeds
each, the same captions, steps and seeds; OOD = the world's held-out classes; CTW and ATD (scored with the
prompt ensemble) against CLIP's MCM with the two-level bootstrap (training seeds, then images).

    .venv/bin/python experiments/clipn/ablation.py --out /tmp/clipn_ablation    # about 10 minutes on 2 cores

Writes results/ablation.json (per variant: trainable numbers, training-state memory, OOD metrics per seed and
their differences to MCM with intervals; time per step is `benchmarks/bench_clipn.py`'s), results/ood.json/.md
(the evaluation report behind it) and results/ablation.md (the README's table).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from clap.data_gen.world.export import render_world
from clap.evaluation.evaluate import evaluate
from clap.fileio import write_text_atomic
from clap.training.parallel import Run, available_cores, train_runs

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"copy": {"no_encoder": "copy"},  # the authors' architecture (16 prompts, lr 3e-4)
            "frozen + head": {"no_encoder": "frozen"},  # the package's lighter variant (8 prompts, lr 1e-3)
            "head only": {"no_encoder": "frozen", "prompt_tokens": 0}}
STATE_BYTES = 16  # per trainable number in training: fp32 weight, gradient and Adam's two moments


def runs(out: Path, seeds: list[int], steps: int) -> tuple[list[Run], dict[str, list[str]]]:
    """Every variant at every seed (`clap.train_adapter` keywords), longest (the copy) first."""
    todo, folders = [], {}
    for variant, model in VARIANTS.items():
        slug = variant.replace(" + ", "_").replace(" ", "_")
        for seed in seeds:
            name = f"{slug}_seed{seed}"
            trainer = {"max_steps": steps, "enable_model_summary": False, "enable_progress_bar": False,
                       "logger": False, "default_root_dir": str(out / "runs" / name)}
            data = {"root": str(out / "captions"), "batch_size": 64, "window": 100, "seed": seed}
            todo.append((name, {"route": "negation", "out": str(out / "adapters" / name), "seed": seed,
                                "model": model, "data": data, "trainer": trainer, "overwrite": True}))
            folders.setdefault(f"CLIPN {variant}", []).append(str(out / "adapters" / name))
    return todo, folders


def costs(folder: str) -> dict:
    """Trainable numbers and their training state in MiB (time per step: `benchmarks/bench_clipn.py`)."""
    from safetensors.torch import load_file

    numbers = sum(t.numel() for t in load_file(str(Path(folder) / "adapter_model.safetensors")).values())
    return {"trainable": numbers, "state_mib": numbers * STATE_BYTES / 2**20}


def rows(report: dict, folders: dict[str, list[str]]) -> dict:
    """Per variant: costs (of its first seed), CTW/ATD AUROC and FPR95 (mean and std (ddof 1) over seeds, mean
    over image types), and the difference to CLIP's MCM with its interval."""
    results, stats = report["results"]["ood"], report["statistics"]
    out = {"CLIP MCM": {m: results["CLIP"]["mean"]["MCM"][m] for m in ("AUROC", "FPR95")}}
    for name, paths in folders.items():
        group = stats["seeds"]["ood"][name]
        metrics = [(rule, m) for rule in ("CTW", "ATD") for m in ("AUROC", "FPR95")]
        out[name] = {**costs(paths[0]), "seeds": len(paths),
                     **{kind: {f"{r} {m}": group[kind]["mean"][r][m] for r, m in metrics} for kind in ("mean", "std")},
                     "vs CLIP MCM": {f"{r} {m}": stats["differences"]["ood"][name][f"{r} {m} (vs MCM {m})"]
                                     for r, m in metrics}}
    return out


METRICS = ("CTW AUROC", "ATD AUROC", "CTW FPR95", "ATD FPR95")


def table(summary: dict) -> str:
    """The README's table: costs, and per rule and metric the mean ± std over seeds and the difference to CLIP's
    MCM with its interval."""
    from clap.evaluation.report import signed_points

    header = ["variant", "trainable numbers", "training state"]
    header += [h for m in METRICS for h in (m, f"{m.split()[0]} − MCM {m.split()[1]} [95%]")]
    mcm = summary["CLIP MCM"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
             "| CLIP MCM | 0 | 0 | " + " | ".join(f"{100 * mcm[m.split()[1]]:.1f} | " for m in METRICS) + " |"]
    for name, row in summary.items():
        if name == "CLIP MCM":
            continue
        cells = [name, f"{row['trainable']:,}", f"{row['state_mib']:.1f} MiB"]
        for m in METRICS:
            cells += [f"{100 * row['mean'][m]:.1f} ± {100 * row['std'][m]:.1f}",
                      " ".join(signed_points(m, row["vs CLIP MCM"][m]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="working folder (not needed with --table-only)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pairs-per-class", type=int, default=16, help="world image-caption pairs per class")
    parser.add_argument("--test-per-class", type=int, default=4, help="test images per class and image type")
    parser.add_argument("--jobs", type=int, default=available_cores())
    parser.add_argument("--clipn-templates", default="authors", help="CLIPN's inference prompts (clap eval ood's)")
    parser.add_argument("--table-only", action="store_true", help="rebuild ablation.md from --results' ablation.json")
    args = parser.parse_args(argv)
    if not (args.out or args.table_only):
        parser.error("--out is required (unless --table-only)")
    results = Path(args.results)
    if args.table_only:
        return write_table(results, json.loads((results / "ablation.json").read_text()))
    out = Path(args.out)
    render_world(out / "captions", "captions", args.pairs_per_class, 2027, progress=False)
    render_world(out / "test", "domains", args.test_per_class, 2028, progress=False)
    todo, folders = runs(out, [2027 + k for k in range(args.seeds)], args.steps)
    train_runs(todo, args.jobs, progress=False)
    report = evaluate(out / "test", adapters=folders, tasks=("ood",), name="ood", seed=2027, progress=False,
                      clipn_templates=args.clipn_templates)
    report.save(out / "report", overwrite=True)
    summary = rows(report.to_dict(), folders)
    results.mkdir(parents=True, exist_ok=True)
    for path in (out / "report").glob("ood.*"):
        shutil.copyfile(path, results / path.name)
    write_text_atomic(results / "ablation.json", json.dumps(summary, indent=2) + "\n")
    return write_table(results, summary)


def write_table(results: Path, summary: dict) -> int:
    """ablation.md (the README's table) from the summary, printed too."""
    text = table(summary)
    write_text_atomic(results / "ablation.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
