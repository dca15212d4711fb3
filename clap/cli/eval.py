"""`clap eval`: zero-shot, few-shot, attacks, disentanglement probes, t-SNE, alpha sweeps, OOD, openness.

    clap eval all --dataset DATA --adapter CLAP=adapters/clap --adapter Im.Aug=adapters/imaug --out report
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from clap.cli.backbone_args import add_backbone_arguments, backbone_options
from clap.cli.openworld_args import add_openworld_arguments
from clap.errors import ClapError
from clap.defaults import ALPHA_SWEEP, EPS_SWEEP, N_BOOT, NOISE_FORMS
from clap.options import ALPHA, NAME, PATH, SEED, Count, Device, Kind

class Epsilon(Kind):
    """An attack budget in pixel units: 8/255 or 0.031, in (0, 1]."""

    def convert(self, value: Any) -> float:
        from clap.evaluation.adversarial import parse_eps

        return parse_eps(value if isinstance(value, str) else repr(value))


class Adapter(Kind):
    """NAME=PATH[@ALPHA|@auto] (see `AdapterSpec`)."""

    def convert(self, value: Any):
        from clap.evaluation.runner import AdapterSpec

        try:
            return AdapterSpec.parse(value)
        except ClapError as e:
            raise ValueError(str(e)) from None


EPSILON, ADAPTER = Epsilon(), Adapter()
TASKS = ("zeroshot", "fewshot", "adversarial", "probe", "tsne", "alpha", "all", "ood", "openness")
CLOSED_SET = TASKS[:TASKS.index("all")]  # what `all` runs; the open-world tasks are asked for by name


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate CLIP and adapters on a root/domain/class/image dataset",
                       description=__doc__.splitlines()[0])
    p.add_argument("task", choices=TASKS, help="the protocol; all = the closed-set ones (ood and openness by name)")
    p.add_argument("--dataset", required=True, type=PATH, help="root/domain/class/image folder")
    p.add_argument("--adapter", action="append", default=[], type=ADAPTER, metavar="NAME=PATH[@ALPHA|@auto]",
                   help="an adapter to compare with the plain backbone (repeatable); ALPHA overrides its recorded "
                        "alpha, 'auto' takes the one chosen on validation data (clap select-alpha); a NAME given "
                        "several times is one adapter trained with several seeds (reported as mean ± std)")
    add_backbone_arguments(p, "backbone (default: the embedded tiny CLIP)")
    p.add_argument("--out", default="eval_report", type=PATH, help="folder for <task>.json, <task>.md and plots")
    p.add_argument("--shots", type=Count(), nargs="+", default=[1, 4, 8, 16, 32],
                   help="few-shot probes: images per class (counts a class cannot supply are skipped)")
    p.add_argument("--seeds", type=SEED, nargs="+", default=[0, 1, 2],
                   help="few-shot probes: one draw of shots per seed")
    p.add_argument("--attack-images", type=Count(0), default=100, help="images per domain attacked (0 = all)")
    p.add_argument("--eps", nargs="+", type=EPSILON, default=list(EPS_SWEEP),
                   help="attack budgets in pixel units, as fractions or numbers (8/255 is the paper's)")
    p.add_argument("--protocol", choices=("pixel", "paper"), default="pixel",
                   help="pixel (default): attacks perturb [0,1] pixels and few-shot probes are scored on the images "
                        "not used to fit them; paper: the authors' protocol (attacks perturb normalised tensors, "
                        "probes are scored on the whole domain, their own shots included)")
    p.add_argument("--alphas", type=ALPHA, nargs="+", default=list(ALPHA_SWEEP),
                   help="the alpha sweep's grid")
    p.add_argument("--cache", default=None, type=PATH, help="folder caching raw image features across runs")
    p.add_argument("--device", default="cpu", type=Device(), help="torch device: cpu, cuda, cuda:1")
    p.add_argument("--seed", type=SEED, default=0, help="seed of probes, attacks, openness orders and the bootstrap")
    p.add_argument("--noise-form", choices=NOISE_FORMS, default="shared",
                   help="ZS(NC): one noise context shared by all classes per draw (the authors' form, default) or "
                        "noise of each class's own (harsher)")
    p.add_argument("--n-boot", type=Count(100), default=N_BOOT, help="bootstrap resamples of the intervals")
    p.add_argument("--templates", nargs="+", type=NAME, default=None, metavar="TEMPLATE",
                   help="replace the PC prompt 'a photo of a {}' (zeroshot, ood, openness) by these templates "
                        "(several: the mean of their features), inline or one file with a template a line; '{}' or "
                        "'{c}' is the class name, e.g. \"a photo of a {c}.\" as CLIP_benchmark writes it")
    p.add_argument("--ignore-classes", action="store_true", help="allow adapters trained for other classes")
    p.add_argument("--overwrite", action="store_true", help="replace a report of the same task in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_openworld_arguments(p)
    p.set_defaults(run=run, on_interrupt="no report was written; rerun the same command (--cache keeps features)")


def run_tasks(setup, tasks, args) -> tuple[dict, dict]:
    """Run the requested protocols on a loaded setup: (results keyed by task, with their seconds; each task's
    `TaskMeasure` for the intervals)."""
    results, measures, repe, seconds = {}, {}, repe_options(setup, args), {}
    for task in tasks:
        start = time.monotonic()
        rows, measured = TASK_RUNNERS[task](setup, args, repe)
        results.update(rows)
        measures.update(measured)
        seconds[task] = round(time.monotonic() - start, 1)
    results["task_seconds"] = seconds
    return results, measures


def _zeroshot(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.evaluation.zeroshot import run_zeroshot

    rows, measure = run_zeroshot(setup, noise_form=args.noise_form, pc_templates=args.templates)
    results = {"zeroshot": rows, "zeroshot_noise": {"form": args.noise_form, **noise_info()},
               "prompt_templates": prompt_templates(args)}
    if repe is not None:
        results["zeroshot_repe"] = run_zeroshot(setup, repe, args.noise_form, args.templates)[0]
    return results, {"zeroshot": measure}


def prompt_templates(args: argparse.Namespace) -> dict:
    """The templates every prompt form used (PC's replaced by --templates when given)."""
    from clap.evaluation.zeroshot import ENSEMBLE_TEMPLATES, PROMPT_FORMS

    return {**{f: [t] for f, t in PROMPT_FORMS.items()}, "PC": pc_templates(args), "ENS/MAX": list(ENSEMBLE_TEMPLATES)}


def pc_templates(args: argparse.Namespace) -> list[str]:
    """The templates of the PC prompt: --templates, or "a photo of a {}"."""
    from clap.evaluation.zeroshot import PROMPT_FORMS

    return args.templates or [PROMPT_FORMS["PC"]]


def noise_info() -> dict:
    from clap import defaults
    from clap.evaluation.zeroshot import NOISE_SEED

    return {"draws": defaults.NOISE_DRAWS, "tokens": defaults.NOISE_TOKENS, "std": defaults.NOISE_STD,
            "seed": NOISE_SEED}


def _fewshot(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.evaluation.fewshot import run_fewshot

    rows, measure = run_fewshot(setup, args.shots, args.seeds, args.protocol)
    return {"fewshot": rows}, {"fewshot": measure}


def _adversarial(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.evaluation.attack_eval import run_adversarial
    from clap.evaluation.plots import plot_eps_sweep

    rows, measure = run_adversarial(setup, epsilons=sorted(set(args.eps)), protocol=args.protocol, seed=args.seed,
                                    max_images=args.attack_images or None)
    plot = plot_eps_sweep(rows, Path(args.out) / "adversarial_eps.png")
    return {"adversarial": rows, "adversarial_plot": str(plot), "attacked_images": measure.images}, \
        {"adversarial": measure}


def _probe(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.evaluation.disentangle import run_probe

    return {"probe": run_probe(setup, args.seed)}, {}


def _tsne(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.evaluation.tsne import run_tsne

    return {"tsne": run_tsne(setup, args.out, args.seed)}, {}


def _alpha(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.evaluation.alpha import run_alpha

    return {"alpha": run_alpha(setup, args.alphas, args.out)}, {}


def repe_options(setup, args: argparse.Namespace) -> dict | None:
    """With --repe, each model's caption corpus encoded once for every task: {model: `Repe`}."""
    from clap.cli.openworld_args import repe_captions
    from clap.evaluation.repe import Repe

    captions = repe_captions(setup, args)
    if captions is None:
        return None
    return {name: Repe.encode(model, captions, args.repe_weight, args.repe_k) for name, model in setup.models.items()}


def run_ood_task(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.cli.openworld_args import merge_groups, ood_sets
    from clap.evaluation.ood import OODOptions, named_in_training, run_ood
    from clap.evaluation.plots import plot_ood
    from clap.evaluation.zeroshot import ENSEMBLE_TEMPLATES

    id_sets, oods, id_classes = ood_sets(setup, args)
    options = OODOptions(merge_groups(args, id_classes), args.mcm_temperature,
                         tuple(args.templates) if args.templates else None)
    results, measure, scores = run_ood(setup, id_sets, oods, id_classes, options, repe)
    results["ood_plot"] = str(plot_ood(scores, Path(args.out) / "ood_scores.png"))
    held_out = args.ood or [c for c in setup.dataset.classes if c not in id_classes]
    results["ood_split"] = {"id_classes": id_classes, "ood": held_out,
                            "named_in_training": named_in_training(setup, held_out),
                            "templates": {"MCM/MaxLogit/Energy": pc_templates(args),
                                          "MaxLogitEnsemble and CLIPN (summed)": list(ENSEMBLE_TEMPLATES)}}
    return results, {"ood": measure}


def run_openness_task(setup, args: argparse.Namespace, repe: dict | None) -> tuple[dict, dict]:
    from clap.cli.openworld_args import openness_groups
    from clap.evaluation.openness import run_openness
    from clap.evaluation.plots import plot_openness

    groups = openness_groups(setup, args)
    results, measure = run_openness(setup, groups, args.orders, args.seed, repe, args.templates)
    results["openness_templates"] = pc_templates(args)
    results["openness_plot"] = str(plot_openness(results["openness"], Path(args.out) / "openness_curves.png"))
    results["openness_groups"] = [[setup.dataset.classes[c] for c in g] for g in groups]
    return results, {"openness": measure}


# Each task: (setup, args, repe) -> (its entries of the report, {task: TaskMeasure} for intervals);
# `all` runs CLOSED_SET in this order.
TASK_RUNNERS = {"zeroshot": _zeroshot, "fewshot": _fewshot, "adversarial": _adversarial, "probe": _probe,
                "tsne": _tsne, "alpha": _alpha, "ood": run_ood_task, "openness": run_openness_task}


def report_run(setup, args, task: str, out: Path, results: dict, measures: dict) -> tuple[Path, Path, str]:
    """Statistics over seeds and images, then the JSON + Markdown report; returns their paths and the tables."""
    from clap.evaluation.report import markdown, write_report
    from clap.evaluation.resample import Resamples
    from clap.evaluation.runner import BASELINE, protocol_info
    from clap.evaluation.stats import differences, seed_groups, seed_summary

    start = time.monotonic()
    resamples = Resamples(args.n_boot, args.seed)
    statistics = {"seeds": seed_summary(results, seed_groups(setup.models)),
                  **differences(BASELINE, measures, resamples),
                  "bootstrap": {"resamples": args.n_boot, "levels": BOOTSTRAP_LEVELS}}
    statistics["bootstrap"]["seconds"] = round(time.monotonic() - start, 1)
    run_info = {"seed": args.seed, "protocol": protocol_info(args.protocol)}
    json_path, md_path = write_report(out, task, setup.describe(), results, run_info, statistics)
    return json_path, md_path, markdown(results, statistics)


BOOTSTRAP_LEVELS = ("training seeds of a seed group, with replacement", "images within each domain (within each class "
                    "for openness; a shared OOD set once), the same for every model", "noise draws of ZS(NC)")


def run(args: argparse.Namespace) -> int:
    from clap.evaluation.report import claim_report
    from clap.fileio import folder_lock, writable_folder

    if args.templates:
        from clap.evaluation.zeroshot import read_templates

        args.templates = read_templates(args.templates)
    out = writable_folder(args.out, outside=args.dataset)
    claim_report(out, args.task, args.overwrite)
    with folder_lock(out, "a report"):
        return _evaluate(args, out)


def _evaluate(args: argparse.Namespace, out: Path) -> int:
    """Load, run the tasks, write and print the report."""
    from clap.evaluation.runner import build_setup

    setup = build_setup(args.dataset, args.adapter, backbone_options(args), args.cache, args.device,
                        args.ignore_classes, progress=not args.no_progress)
    tasks = CLOSED_SET if args.task == "all" else (args.task,)
    if setup.negation and "ood" not in tasks:
        print(f"note: {', '.join(setup.negation)}: CLIPN (negation) adapters are scored by `clap eval ood` only")
    results, measures = run_tasks(setup, tasks, args)
    json_path, md_path, tables = report_run(setup, args, args.task, out, results, measures)
    print(tables)
    skipped = sum(len(f.skipped) for f in setup.raw.values())
    if skipped:
        print(f"{skipped} unreadable images were skipped (listed per domain in the JSON report)")
    print(f"report: {json_path} and {md_path}")
    return 0
