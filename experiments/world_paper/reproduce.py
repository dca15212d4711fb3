"""The paper's comparisons on the embedded world with enough power: `clap demo` at 512 attacked images over an
eps sweep that starts where CLIP is off the floor, plus AutoAttack as a gradient-masking check.

    make setup-test     # the venv with the test extras: AutoAttack is torchattacks'
    .venv/bin/python experiments/world_paper/reproduce.py --out /tmp/world_paper     # about 45 minutes, 2 cores

Steps: (1) `clap demo --size full` with 64 attacked images per image type (512 in all) at eps 0.5, 1, 2, 4, 8 /255: the
world rendered, Im.Aug trained on one image per attribute prompt (480 a class, 15,360 images) and CLAP on the
prompts, 3 training seeds each, alpha chosen on a validation render, every protocol with the two-level
bootstrap; (2) AutoAttack (torchattacks, standard L-inf) and PGD-20 on the same images for CLIP and the first
CLAP seed, at the eps where PGD-20 leaves images right (1/255 by default) on a share of the images (8 per image
type by default: AutoAttack's Square runs 5,000 queries per robust image, minutes per model on a CPU);
(3) the reports, their figures, the wall times and `summary.md` (the tables the README quotes) in `--results`
(`--summary-only` rebuilds summary.md from them; `--autoattack-only` reruns step 2 alone on a finished --out).
Demo options after `--` replace the defaults (e.g. `-- --clap-steps 30` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from clap.cli.main import main
from clap.evaluation.protocols.adversarial import AUTOATTACK
from clap.evaluation.output.claims import claims_table
from clap.evaluation.pipeline.evaluate import evaluate
from clap.evaluation.output.report import collapse_seeds, differences_table, openness_analysis_table, signed_points
from clap.evaluation.statistics.stats import direction
from clap.fileio import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"
EPS = ["0.5/255", "1/255", "2/255", "4/255", "8/255"]
AT_POWER = ["--size", "full", "--attack-images", "64", "--eps", *EPS]  # the full demo, attacked at power


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="working folder (data, adapters, reports); a rerun reuses renders")
    parser.add_argument("--results", default=str(RESULTS), help="where the reports and summary.md are copied")
    parser.add_argument("--autoattack-images", type=int, default=8, help="AutoAttack's images per image type")
    parser.add_argument("--autoattack-eps", nargs="+", default=["1/255"], help="AutoAttack's budgets")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--summary-only", action="store_true",
                        help="rebuild summary.md from the reports already in --results, running nothing")
    parser.add_argument("--autoattack-only", action="store_true",
                        help="rerun only step (2) on the demo already in --out (its adapters and test render), "
                             "keeping the demo's report and wall time in --results")
    parser.add_argument("demo", nargs="*", help="`clap demo` options (after --), replacing the defaults")
    args = parser.parse_args(argv)
    if not (args.out or args.summary_only):
        parser.error("--out is required (unless --summary-only)")
    if args.autoattack_only and not (Path(args.out) / "report" / "demo.json").is_file():
        parser.error(f"--autoattack-only: no {args.out}/report/demo.json; run the whole reproduction there first")
    return args, [*AT_POWER, *args.demo] + (["--no-progress"] if args.no_progress else [])


def autoattack_check(out: Path, demo: dict, args: argparse.Namespace) -> None:
    """AutoAttack and PGD-20 on the same images for CLIP and the first CLAP seed; the report saved in out."""
    first = out / "adapters" / f"clap_seed{demo['seed']}"
    report = evaluate(out / "data" / "test", adapters=[f"CLAP={first}@auto"], tasks=("adversarial",),
                      name="autoattack", attack_images=args.autoattack_images, eps=args.autoattack_eps,
                      autoattack=True, seed=demo["seed"], progress=not args.no_progress)
    report.save(out / "autoattack", overwrite=True)


def attack_rows(report: dict, attacks: tuple[str, ...]) -> list[list[str]]:
    """CLAP - CLIP per classifier, attack and eps, with the interval and what it says."""
    rows = []
    for metric, d in report["statistics"]["differences"]["adversarial"]["CLAP"].items():
        head, _, setting = metric.partition("/")
        attack, _, eps = setting.partition("@")
        if attack in attacks:
            rows.append([head, attack, eps, *signed_points(metric, d), direction(d["low"], d["high"])])
    return rows


def autoattack_rows(report: dict) -> list[list[str]]:
    """Accuracy under PGD-20 and AutoAttack per model and classifier (mean over image types)."""
    rows = []
    for model, heads in report["results"]["adversarial"].items():
        for head, by_domain in heads.items():
            mean = by_domain["mean"]
            for eps in mean[AUTOATTACK]:
                rows.append([model, head, eps, f"{100 * mean['clean']:.1f}", f"{100 * mean['PGD-20'][eps]:.1f}",
                             f"{100 * mean[AUTOATTACK][eps]:.1f}"])
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def summary(demo: dict, auto: dict, seconds: dict[str, float]) -> str:
    """The tables the README quotes, all read off the two reports."""
    data = {name: m["training_data"] for name, m in demo["models"].items() if "training_data" in m}
    setup = [[name, d["route"], str(d[kind]), kind] for name, d in data.items()
             for kind in [next(k for k in ("images", "prompts", "pairs") if k in d)]]
    parts = [
        "# The paper's comparisons on the embedded world, at power\n",
        f"Attacked images: {demo['results']['attacked_images']} (every model, every eps); AutoAttack check: "
        f"{auto['results']['attacked_images']}. Wall time: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) + ".\n",
        "## Training data\n", table(["model (seed)", "route", "count", "of"], setup),
        "## The paper's claims (eps 8/255 for the attacks)\n", claims_table(demo),
        "## Attack gains at every eps: CLAP - CLIP, mean over the 3 seeds (points)\n",
        table(["classifier", "attack", "eps", "difference", "95% interval", "interval says"],
              attack_rows(demo, ("FGSM", "PGD-20", "CW-20"))),
        "## Gradient-masking check: AutoAttack against PGD-20 on the same images (first CLAP seed)\n",
        table(["model", "classifier", "eps", "clean", "PGD-20", "AutoAttack"], autoattack_rows(auto)),
        table(["classifier", "attack", "eps", "CLAP - CLIP", "95% interval", "interval says"],
              attack_rows(auto, ("PGD-20", AUTOATTACK))),
        "## Why openness fails (the openness paper's analysis; mean over image types, ± over seeds)\n",
        openness_analysis_table(collapse_seeds(demo["results"], demo["statistics"]["seeds"])["openness_analysis"]),
        differences_table({"openness_analysis": demo["statistics"]["differences"]["openness_analysis"]}),
    ]
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


def copy_results(out: Path, results: Path, sources: tuple[str, ...] = ("report", "autoattack")) -> None:
    """The reports (demo's renamed world_paper.*, autoattack.*), their figures and the claims."""
    results.mkdir(parents=True, exist_ok=True)
    for source in (out / name for name in sources):
        for path in source.iterdir():
            if path.suffix in (".json", ".md", ".png"):
                name = path.name.replace("demo.", "world_paper.")
                shutil.copyfile(path, results / name)


def write_summary(results: Path) -> str:
    """summary.md from the reports and wall times in `results` (also after the fact: `--summary-only`)."""
    demo, auto, seconds = (json.loads((results / name).read_text())
                           for name in ("world_paper.json", "autoattack.json", "seconds.json"))
    text = summary(demo, auto, seconds)
    write_text_atomic(results / "summary.md", text)
    return text


def run(argv: list[str] | None = None) -> int:
    args, demo_options = parse(argv)
    if args.summary_only:
        print(write_summary(Path(args.results)))
        return 0
    out, results, seconds = Path(args.out), Path(args.results), {}
    if args.autoattack_only:
        seconds = json.loads((results / "seconds.json").read_text())
    else:
        start = time.monotonic()
        if main(["demo", "--out", str(out), *demo_options]):
            return 2
        seconds["demo"] = time.monotonic() - start
    demo = json.loads((out / "report" / "demo.json").read_text())
    start = time.monotonic()
    autoattack_check(out, demo, args)
    seconds["AutoAttack check"] = time.monotonic() - start
    copy_results(out, results, ("autoattack",) if args.autoattack_only else ("report", "autoattack"))
    write_text_atomic(results / "seconds.json", json.dumps(seconds, indent=2) + "\n")
    print(write_summary(Path(args.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
