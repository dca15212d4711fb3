"""The evaluation tasks: their options (`EvalOptions`) and the task table `clap.evaluate` runs.

Each task is `(setup, options, repe) -> TaskOutput`: the report entries it adds, the `TaskMeasure` its
intervals come from, and the figures it draws (file name -> a function drawing it into a folder; the
report records the file name, relative to the report's folder, and `Report.save` draws them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from clap.defaults import (ADVERSARIAL_RULES, ALPHA_SWEEP, CLIPN_TEMPLATE_SETS, EPS_SWEEP, N_BOOT, NOISE_FORMS,
                           OPENNESS_ORDERS, PROTOCOLS, REPE_K, REPE_WEIGHT)
from clap.errors import ClapError
from clap.evaluation.inputs.shard import SHARD
from clap.evaluation.pipeline.task_output import RecordedTask, TaskOutput, TaskRecords
from clap.runtime import release_freed_memory
from clap.options import (ALPHA, NAME, PATH, POSITIVE, PRECISION, PROBABILITY, SCALE, SEED, Choice, Count, Device,
                          Kind, check_fields, option)

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup


class Epsilon(Kind):
    """An attack budget in pixel units: 8/255 or 0.031, in (0, 1]."""

    def convert(self, value) -> float:
        from clap.evaluation.protocols.adversarial import parse_eps

        return parse_eps(value if isinstance(value, str) else repr(value))


EPSILON = Epsilon()
OOD_GROUP, OPENNESS_GROUP = "ood (OOD detection)", "openness (vocabulary extension)"  # --help's sections
REPE_GROUP, ANOMALY_GROUP = "REPE (zeroshot, ood, openness)", "anomaly (pixel-wise, on scenes)"


@dataclass
class EvalOptions:
    """Every option of an evaluation, at `clap eval`'s defaults; each field is also `clap eval`'s flag of the same
    name (`n_boot`: --n-boot), its help and limits declared once, here."""

    shots: Sequence[int] = option((1, 4, 8, 16, 32), Count(), "few-shot probes: images per class (counts a class "
                                  "cannot supply are skipped)", many=True)
    seeds: Sequence[int] = option((0, 1, 2), SEED, "few-shot probes and the attacked 1-shot probe: one draw of shots "
                                "per seed", many=True)
    attack_images: int = option(100, Count(0), "images per domain attacked (0 = all)")
    autoattack: bool = option(False, None, "also attack with AutoAttack (standard L-inf: APGD-CE, APGD-T, FAB-T, "
                              "Square; needs torchattacks) on the same images and eps: at or below PGD-20's "
                              "accuracy, or masking")
    eps: Sequence[float] = option(EPS_SWEEP, EPSILON, "attack budgets in pixel units, as fractions or numbers "
                                  "(8/255 is the paper's)", many=True)
    protocol: str = option("pixel", Choice(PROTOCOLS), "pixel: attacks perturb [0,1] pixels and few-shot probes are "
                           "scored on the images not used to fit them; paper: the authors' protocol (attacks perturb "
                           "normalised tensors, probes are scored on the whole domain, their own shots included)")
    alphas: Sequence[float] = option(ALPHA_SWEEP, ALPHA, "the alpha sweep's grid", many=True)
    seed: int = option(0, SEED, "seed of probes, attacks, openness orders and the bootstrap")
    noise_form: str = option("shared", Choice(NOISE_FORMS), "ZS(NC): one noise context shared by all classes per "
                             "draw (the authors' form) or noise of each class's own (harsher)")
    n_boot: int = option(N_BOOT, Count(100), "bootstrap resamples of the intervals")
    templates: Sequence[str] | None = option(None, NAME, "replace the PC prompt 'a photo of a {}' (zeroshot, ood, "
                                             "openness) by these templates (several: the mean of their features), "
                                             "inline or one file with a template a line; '{}' or '{c}' is the class "
                                             "name, e.g. \"a photo of a {c}.\" as CLIP_benchmark writes it",
                                             many=True, metavar="TEMPLATE")
    ood: str | None = option(None, PATH, "folder of OOD images, any layout", group=OOD_GROUP, exclusive="ood")
    ood_classes: Sequence[str] | None = option(None, NAME, "classes of the dataset held out as OOD (default on the "
                                               "world: the last shape of each family)", many=True, group=OOD_GROUP,
                                               exclusive="ood")
    merge: str | None = option(None, PATH, "class groups scored as one class by the max-logit ensemble ({name: "
                               "[class, ...]}; anomaly: 'families' for the world's)", group=OOD_GROUP, metavar="JSON")
    ood_prompts: Sequence[str] | None = option(None, NAME, "VL4AD's outlier concepts appended to the classes (score "
                                               "OODPrompts: the best ID class's softmax probability over classes and "
                                               "concepts)", many=True, group=OOD_GROUP, metavar="CONCEPT")
    clipn_templates: str = option("authors", Choice(CLIPN_TEMPLATE_SETS), "what CLIPN sums its yes and no class "
                                  "features over: its authors' 128 templates, the max-logit ensemble's 16, or the PC "
                                  "template alone", group=OOD_GROUP)
    mcm_temperature: float = option(1.0, POSITIVE, "MCM's softmax temperature T'", group=OOD_GROUP)
    groups: str | None = option(None, PATH, "vocabularies {name: [class, ...]} (default: the world's 8 shape "
                                "families; random groups of --group-size otherwise)", group=OPENNESS_GROUP,
                                metavar="JSON")
    group_size: int = option(5, Count(), "classes per random vocabulary", group=OPENNESS_GROUP)
    orders: int = option(OPENNESS_ORDERS, Count(), "random orders per target", group=OPENNESS_GROUP)
    adversarial_rule: str = option("greedy", Choice(ADVERSARIAL_RULES), "how the 3 adversarial non-target classes "
                                   "of each target vocabulary are chosen: greedy (one at a time, the most harmful "
                                   "each) or ranked (each scored alone, the authors' adv_vocab_mining)",
                                   group=OPENNESS_GROUP)
    repe: bool = option(False, None, "also report the tasks with REPE-enhanced class features, and REPE's effect",
                        group=REPE_GROUP)
    captions: str | Sequence[str] | None = option(None, PATH, "REPE's caption corpus: captions.jsonl of a world "
                                                  "captions render, or one caption per line (default on the world: "
                                                  "its caption generator); from Python also the captions themselves",
                                                  group=REPE_GROUP)
    repe_weight: float = option(REPE_WEIGHT, PROBABILITY, "REPE's mixing weight w", group=REPE_GROUP)
    repe_k: int = option(REPE_K, Count(), "captions averaged per class", group=REPE_GROUP)
    cache: str | None = option(None, PATH, "folder caching raw image features across runs")
    device: str = option("auto", Device(), "torch device: auto (CUDA when this machine has it, else the CPU), cpu, "
                         "cuda, cuda:1")
    precision: str = option("auto", PRECISION, "the frozen encoders: fp32, bf16 or fp16 autocast (fp16: CUDA only); "
                            "auto = fp16 on CUDA, fp32 on the CPU; attacks and probes always run in fp32")
    ignore_classes: bool = option(False, None, "allow adapters trained for other classes")
    shard: str | None = option(None, SHARD, "evaluate only shard I/N of the dataset's domains (zeroshot, fewshot, "
                               "ood) and save its per-image records; 'torchrun': the rank's shard, on its GPU; "
                               "`clap report merge` of all N gives exactly one run's report", metavar="I/N")
    decoder: Sequence[str] | None = option(None, PATH, "trained mask decoders (clap train --config "
                                           "experiments/configs/world_vl4ad.yaml): each adds VL4AD's decoder scores to "
                                           "the model whose features it was trained on (the frozen model's: CLIP; "
                                           "--data.adapter's: that adapter); several: decoder seeds", many=True,
                                           group=ANOMALY_GROUP, metavar="DIR")
    dense_scale: float = option(1.0, SCALE, "enlarge each scene this many times before its dense (MaskCLIP) "
                                "features: a finer grid", group=ANOMALY_GROUP)
    progress: bool = option(True, None, "progress bars (the command line's --no-progress)", flag=False)

    def __post_init__(self) -> None:
        check_fields(self, skip=("templates", "captions"))
        if self.templates is not None:
            from clap.evaluation.protocols.zeroshot import read_templates

            self.templates = read_templates(self.templates, "`templates`: ")
        if self.captions is not None and not isinstance(self.captions, (str, Path)):
            self.captions = [NAME.check("captions", c) for c in self.captions]
        if self.ood_prompts is not None and not self.ood_prompts:
            raise ClapError("ood_prompts names no concept; give at least one (or None)")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def pc_templates(options: EvalOptions) -> list[str]:
    """The templates of the PC prompt: the given ones, or "a photo of a {}"."""
    from clap.evaluation.protocols.zeroshot import form_templates

    return form_templates(options.templates)["PC"]


def prompt_templates(options: EvalOptions) -> dict:
    """The templates every prompt form used."""
    from clap.evaluation.protocols.zeroshot import ENSEMBLE_TEMPLATES, form_templates

    return {**form_templates(options.templates), "ENS/MAX": list(ENSEMBLE_TEMPLATES)}


def noise_info() -> dict:
    from clap import defaults
    from clap.evaluation.protocols.zeroshot import NOISE_SEED

    return {"draws": defaults.NOISE_DRAWS, "tokens": defaults.NOISE_TOKENS, "std": defaults.NOISE_STD,
            "seed": NOISE_SEED}


def zeroshot_records(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskRecords:
    from clap.evaluation.protocols.zeroshot import zero_shot_records

    records = {"zeroshot": zero_shot_records(setup, noise_form=options.noise_form, pc_templates=options.templates)}
    if repe is not None:
        records["zeroshot_repe"] = zero_shot_records(setup, repe, options.noise_form, options.templates)
    return TaskRecords(records, {"zeroshot_noise": {"form": options.noise_form, **noise_info()},
                                 "prompt_templates": prompt_templates(options)})


def zeroshot_output(records: TaskRecords, options: EvalOptions) -> TaskOutput:
    from clap.evaluation.statistics.stats import with_treatment
    from clap.evaluation.protocols.zeroshot import zero_shot_results

    rows, measure = zero_shot_results(records.records["zeroshot"])
    results, measures = {"zeroshot": rows, **records.entries}, {"zeroshot": measure}
    if "zeroshot_repe" in records.records:
        results["zeroshot_repe"], enhanced = zero_shot_results(records.records["zeroshot_repe"])
        measures["zeroshot_repe"] = with_treatment(measure, enhanced)
    return TaskOutput(results, measures)


def fewshot_records(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskRecords:
    from clap.evaluation.protocols.fewshot import few_shot_records

    return TaskRecords({"fewshot": few_shot_records(setup, options.shots, options.seeds, options.protocol)})


def fewshot_output(records: TaskRecords, options: EvalOptions) -> TaskOutput:
    from clap.evaluation.protocols.fewshot import few_shot_results

    rows, measure = few_shot_results(records.records["fewshot"])
    return TaskOutput({"fewshot": rows}, {"fewshot": measure})


def adversarial_task(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskOutput:
    from clap.evaluation.protocols.adversarial import ATTACKS, AUTOATTACK
    from clap.evaluation.protocols.attack_eval import run_adversarial
    from clap.evaluation.output.plots import plot_eps_sweep

    attacks = (*ATTACKS, AUTOATTACK) if options.autoattack else ATTACKS
    rows, measure = run_adversarial(setup, attacks, sorted(set(options.eps)), options.protocol,
                                    options.attack_images or None, options.seed, options.seeds)
    name = "adversarial_eps.png"
    return TaskOutput({"adversarial": rows, "adversarial_plot": name, "attacked_images": measure.images},
                      {"adversarial": measure}, {name: lambda folder: plot_eps_sweep(rows, folder / name)})


def probe_task(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskOutput:
    from clap.evaluation.protocols.disentangle import run_probe

    return TaskOutput({"probe": run_probe(setup, options.seed)})


def tsne_task(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskOutput:
    from clap.evaluation.protocols.tsne import tsne_figures

    figures = tsne_figures(setup, options.seed)  # {model: (file name, figure)}
    return TaskOutput({"tsne": {model: name for model, (name, _) in figures.items()}}, figures=dict(figures.values()))


def alpha_task(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskOutput:
    from clap.evaluation.protocols.alpha import run_alpha
    from clap.evaluation.output.plots import plot_alpha

    sweep = run_alpha(setup, options.alphas)
    if not sweep:
        return TaskOutput({"alpha": sweep})
    chosen = {name: m.adapter.config.alpha_selection["alpha"] for name, m in setup.models.items()
              if m.adapter is not None and m.adapter.config.alpha_selection}
    name = "alpha_sweep.png"
    return TaskOutput({"alpha": {**sweep, "plot": name}}, figures={name: lambda f: plot_alpha(sweep, chosen, f / name)})


def ood_records(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskRecords:
    from clap.evaluation.protocols import ood
    from clap.evaluation.pipeline.openworld import merge_groups, ood_sets
    from clap.evaluation.protocols.zeroshot import ENSEMBLE_TEMPLATES

    id_sets, oods, id_classes = ood_sets(setup, options)
    pc = pc_templates(options)
    clipn = {"authors": ood.CLIPN_TEMPLATES, "ensemble": ENSEMBLE_TEMPLATES, "single": pc}
    settings = ood.OODOptions(merge_groups(options, id_classes), options.mcm_temperature,
                              tuple(options.templates) if options.templates else None,
                              tuple(options.ood_prompts) if options.ood_prompts else None,
                              tuple(clipn[options.clipn_templates]))
    held_out = [options.ood] if options.ood else [c for c in setup.dataset.classes if c not in id_classes]
    split = {"id_classes": id_classes, "ood": held_out, "ood_prompts": settings.ood_prompts,
             "named_in_training": ood.named_in_training(setup, held_out),
             "templates": {"MCM/MaxLogit/Energy": pc, "MaxLogitEnsemble, VL4AD": list(ENSEMBLE_TEMPLATES),
                           "CLIPN (yes and no features summed)": list(settings.clipn_templates)},
             "clipn_templates": options.clipn_templates,
             "clipn_temperature": {name: ood.clipn_temperature(setup.backbone, adapter)
                                   for name, adapter in setup.negation.items()}}
    return TaskRecords(ood.ood_records(setup, id_sets, oods, id_classes, settings, repe), {"ood_split": split})


def ood_output(records: TaskRecords, options: EvalOptions) -> TaskOutput:
    from clap.evaluation.protocols.ood import ood_results
    from clap.evaluation.output.plots import plot_ood

    results, measures = ood_results(records.records, shared=bool(options.ood))
    name, scores = "ood_scores.png", records.records["ood"]
    results |= {"ood_plot": name, **records.entries}
    return TaskOutput(results, measures, {name: lambda folder: plot_ood(scores, folder / name)})


def openness_task(setup: EvalSetup, options: EvalOptions, repe: dict | None) -> TaskOutput:
    from clap.evaluation.protocols.openness import run_openness, scored_models
    from clap.evaluation.protocols.openness_analysis import run_analysis
    from clap.evaluation.pipeline.openworld import openness_groups
    from clap.evaluation.output.plots import plot_margins, plot_openness

    groups = openness_groups(setup, options)
    scored = scored_models(setup, repe, options.templates)
    results, measures = run_openness(setup, groups, options.orders, options.seed, scored=scored)
    analysis, analysis_measure, margins = run_analysis(setup, groups, rule=options.adversarial_rule, scored=scored)
    curves, margin_plot = "openness_curves.png", "openness_margins.png"
    results |= analysis | {"openness_templates": pc_templates(options), "openness_plot": curves,
                           "openness_margins_plot": margin_plot, "openness_adversarial_rule": options.adversarial_rule,
                           "openness_groups": [[setup.dataset.classes[c] for c in g] for g in groups]}
    rows = results["openness"]
    return TaskOutput(results, {**measures, "openness_analysis": analysis_measure},
                      {curves: lambda folder: plot_openness(rows, folder / curves),
                       margin_plot: lambda folder: plot_margins(margins, folder / margin_plot)})


def anomaly_task(setup, options: EvalOptions, repe: dict | None) -> TaskOutput:
    from clap.evaluation.pipeline.scene_setup import anomaly_output

    return anomaly_output(setup, options)


# The task table; `CLOSED_SET` is what `all` runs, in this order; the open-world tasks are asked for by name.
# `SCENE_TASKS` run on a scene folder with label maps (`clap.evaluation.pipeline.scene_setup.SceneSetup`), alone.
# `RECORDED` tasks are computed from per-image records, so they run in shards of domains that merge exactly.
RECORDED = {task.name: task for task in (RecordedTask("zeroshot", zeroshot_records, zeroshot_output),
                                         RecordedTask("fewshot", fewshot_records, fewshot_output),
                                         RecordedTask("ood", ood_records, ood_output))}
TASKS: dict[str, Callable[..., TaskOutput]] = {
    "zeroshot": RECORDED["zeroshot"], "fewshot": RECORDED["fewshot"], "adversarial": adversarial_task,
    "probe": probe_task, "tsne": tsne_task, "alpha": alpha_task, "ood": RECORDED["ood"], "openness": openness_task,
    "anomaly": anomaly_task}
SCENE_TASKS = ("anomaly",)
CLOSED_SET = ("zeroshot", "fewshot", "adversarial", "probe", "tsne", "alpha")


def repe_options(setup: EvalSetup, options: EvalOptions) -> dict | None:
    """With REPE on, each model's caption corpus encoded once for every task: {model: `Repe`}."""
    from clap.evaluation.pipeline.openworld import repe_captions
    from clap.evaluation.protocols.repe import Repe

    captions = repe_captions(options)
    if captions is None:
        return None
    return {name: Repe.encode(model, captions, options.repe_weight, options.repe_k)
            for name, model in setup.models.items()}


def check_tasks(tasks: Sequence[str]) -> None:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        problem = f"unknown task {unknown[0]!r}" if unknown else "no task given"
        raise ClapError(f"{problem}; choose from {', '.join(TASKS)} (or 'all': {', '.join(CLOSED_SET)})")
    scenes = [t for t in tasks if t in SCENE_TASKS]
    if scenes and len(tasks) > 1:
        raise ClapError(f"{scenes[0]} runs on a scene folder with label maps, alone; evaluate it apart from "
                        f"{', '.join(t for t in tasks if t not in SCENE_TASKS)}")


TASK_OPTIONS = {"autoattack": ("adversarial",), "decoder": SCENE_TASKS, "dense_scale": SCENE_TASKS,
                "cache": tuple(t for t in TASKS if t not in SCENE_TASKS)}
"""Options that only some tasks read: given to another task, they are refused rather than ignored."""


def check_task_options(tasks: Sequence[str], options: EvalOptions) -> None:
    """One line for an option none of the tasks would read (e.g. `autoattack` on zeroshot, `cache` on anomaly), or
    for a shard of a task that does not merge from records."""
    whole = [t for t in tasks if t not in RECORDED]
    if options.shard is not None and whole:
        raise ClapError(f"`shard` splits {', '.join(RECORDED)} only; evaluate {', '.join(whole)} in a run of its own")
    defaults = EvalOptions()
    for name, readers in TASK_OPTIONS.items():
        if not set(tasks) & set(readers) and getattr(options, name) != getattr(defaults, name):
            raise ClapError(f"`{name}` does nothing for {', '.join(tasks)} (it applies to {', '.join(readers)}); "
                            "drop it")


def run_tasks(setup: EvalSetup, tasks: Sequence[str], options: EvalOptions) -> TaskOutput:
    """Run tasks on a loaded setup: their outputs together, the report entries with each task's seconds."""
    check_tasks(tasks)
    merged, seconds = TaskOutput({}), {}
    repe = repe_options(setup, options)
    for task in tasks:
        start = time.monotonic()
        output = TASKS[task](setup, options, repe)
        merged.add(output)
        release_freed_memory()
        seconds[task] = round(time.monotonic() - start, 1)
    merged.rows["task_seconds"] = seconds
    return merged
