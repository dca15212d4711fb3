"""What CLIPN's "no" encoder needs, measured on the embedded world like for like: the authors' trainable copy of the
text tower against the package's frozen tower + "no" prompts + head, and against the head alone; 3 training seeds
each, the same captions, steps and seeds. The captions are rendered from the in-distribution classes only (the
world's 8 held-out shapes, the OOD test, are neither named nor drawn in them). For each inference template set
(the authors' 128, the 16-template ensemble, the single "a photo of a {}"), CTW and ATD are set beside MSP, MaxLogit,
Energy and MCM computed from the same "yes" class features at the same temperature (the backbone's own), as the
authors set them, each difference with its two-level bootstrap interval (training seeds, then images).

    .venv/bin/python experiments/clipn/ablation.py --out /tmp/clipn_ablation    # about 10 minutes on 2 cores

Writes results/ablation.json (per template set and variant: trainable numbers, training-state memory, OOD
metrics per seed and every difference with its interval; time per step is `benchmarks/bench_clipn.py`'s),
results/ood_<set>.json/.md (the evaluation reports behind it) and results/ablation.md (the README's tables).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from clap.evaluation.pipeline.evaluate import evaluate
from clap.fileio import write_text_atomic
from clap.prompts.classes import world_open_set
from clap.runtime import available_cores
from clap.training.parallel import Run, train_runs

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


RULES, BASELINES, METRICS = ("CTW", "ATD"), ("MSP", "MaxLogit", "Energy", "MCM"), ("AUROC", "FPR95")
TEMPLATE_SETS = ("authors", "ensemble", "single")


def rows(report: dict, folders: dict[str, list[str]]) -> dict:
    """One template set's summary: the baselines from CLIPN's own "yes" logits (the same for every variant and seed),
    and per variant its costs (of its first seed), CTW/ATD AUROC and FPR95 (mean and std (ddof 1) over seeds, mean
    over image types) and each rule's difference to each baseline with its interval."""
    results, stats = report["results"]["ood"], report["statistics"]
    first = results[f"{next(iter(folders))}#1"]["mean"]
    out = {"temperature": next(iter(report["results"]["ood_split"]["clipn_temperature"].values())),
           "templates": len(report["results"]["ood_split"]["templates"]["CLIPN (yes and no features summed)"]),
           "baselines": {b: {m: first[b][m] for m in METRICS} for b in BASELINES}, "variants": {}}
    for name, paths in folders.items():
        group = stats["seeds"]["ood"][name]
        differences = stats["differences"]["ood"][name]
        spread = {kind: {f"{r} {m}": group[kind]["mean"][r][m] for r in RULES for m in METRICS}
                  for kind in ("mean", "std")}
        out["variants"][name] = {
            **costs(paths[0]), "seeds": len(paths), **spread,
            "vs": {f"{r} {m}": {b: differences[f"{r} {m} (vs {b} {m}, same model)"] for b in BASELINES}
                   for r in RULES for m in METRICS}}
    return out


def table(summary: dict) -> str:
    """The README's tables, one per template set: each rule's AUROC and FPR95 (mean ± std over seeds) and its
    difference to each same-logit baseline with the interval."""
    from clap.evaluation.output.report import signed_points

    parts = []
    for name, entry in summary.items():
        base = entry["baselines"]
        parts.append(f"**{name} templates ({entry['templates']}), T = {entry['temperature']:.4f}.** Baselines from the "
                     "same yes logits, AUROC / FPR95: " + ", ".join(
                         f"{b} {100 * base[b]['AUROC']:.1f} / {100 * base[b]['FPR95']:.1f}" for b in BASELINES) + "\n")
        header = ["variant", "trainable numbers", "rule"]
        header += [h for m in METRICS for h in (m, *(f"− {b}" for b in BASELINES))]
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for variant, row in entry["variants"].items():
            for rule in RULES:
                cells = [variant, f"{row['trainable']:,}", rule]
                for m in METRICS:
                    key = f"{rule} {m}"
                    cells += [f"{100 * row['mean'][key]:.1f} ± {100 * row['std'][key]:.1f}"]
                    cells += [" ".join(signed_points(m, row["vs"][key][b])) for b in BASELINES]
                lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="working folder (not needed with --table-only)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pairs-per-class", type=int, default=16, help="world image-caption pairs per class")
    parser.add_argument("--test-per-class", type=int, default=4, help="test images per class and image type")
    parser.add_argument("--jobs", type=int, default=available_cores())
    parser.add_argument("--template-sets", nargs="+", default=list(TEMPLATE_SETS), choices=TEMPLATE_SETS,
                        help="CLIPN's inference prompts (clap eval ood's --clipn-templates), one evaluation each")
    parser.add_argument("--table-only", action="store_true", help="rebuild ablation.md from --results' ablation.json")
    args = parser.parse_args(argv)
    if not (args.out or args.table_only):
        parser.error("--out is required (unless --table-only)")
    results = Path(args.results)
    if args.table_only:
        return write_table(results, json.loads((results / "ablation.json").read_text()))
    out = Path(args.out)
    open_set = WorldSpec(classes=tuple(world_open_set()))  # the OOD test's held-out shapes stay unknown
    render_world(out / "captions", "captions", args.pairs_per_class, 2027, spec=open_set, progress=False)
    render_world(out / "test", "domains", args.test_per_class, 2028, progress=False)
    todo, folders = runs(out, [2027 + k for k in range(args.seeds)], args.steps)
    train_runs(todo, args.jobs, progress=False)
    summary = {}
    for templates in args.template_sets:
        report = evaluate(out / "test", adapters=folders, tasks=("ood",), name=f"ood_{templates}", seed=2027,
                          progress=False, clipn_templates=templates)
        report.save(out / "report", overwrite=True)
        summary[templates] = rows(report.to_dict(), folders)
    results.mkdir(parents=True, exist_ok=True)
    for path in (out / "report").glob("ood_*.*"):
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
