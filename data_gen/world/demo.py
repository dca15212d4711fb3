"""The whole method on the embedded world, offline, end to end (`clap demo`, `run_demo`).

Renders a style-balanced evaluation set (image types as domains), a validation set of another seed
and Im.Aug training images; trains CLAP adapters (text route) and Im.Aug adapters (image route) on
the embedded tiny CLIP with several seeds; chooses each adapter's inference alpha on the validation
set (no test labels); evaluates every protocol for CLIP, Im.Aug and CLAP on the test set and prints
the tables, with mean ± std over seeds and paired differences to CLIP with bootstrap intervals.
The OOD test holds the world's 8 held-out shapes out as unknown, so it gets adapters whose training
never named or showed them: CLAP trained on the 24 in-distribution classes (its alpha chosen on a validation
render of those classes) and CLIPN on captions of those classes; its report is `demo_ood`.

    from clap.data_gen.world.demo import DemoOptions, run_demo
    report, ood, claims = run_demo(DemoOptions(out="demo_output", adapter_seeds=3))
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from clap.data_gen.world.styles import IMAGE_TYPES
from clap.evaluation.pipeline.tasks import EPSILON
from clap.options import PATH, SEED, Choice, Count, check_fields, option
from clap.runtime import available_cores
from clap.training.parallel import Run, train_runs


QUICK, FULL = "quick", "full"
# The sizes of the two runs (`size`): quick, `make demo`'s default, fits in minutes on 2 cores; full is the sizes
# of the earlier committed runs (about an hour): more image types, seeds, steps, images and attacks, the same method.
# The quick run's four image types are DomainNet's four most used domains (real, sketch, painting, clipart).
SIZES = {
    QUICK: {"image_types": ("photograph", "sketch", "painting", "clipart"), "adapter_seeds": 2, "images_per_class": 6,
            "val_images_per_class": 2, "imaug_prompts_per_class": 60, "clap_steps": 500, "imaug_steps": 150,
            "caption_images_per_class": 16, "clipn_steps": 150, "attack_images": 4, "eps": (1 / 255, 8 / 255)},
    FULL: {"image_types": tuple(IMAGE_TYPES), "adapter_seeds": 3, "images_per_class": 10, "val_images_per_class": 2,
           "imaug_prompts_per_class": 480, "clap_steps": 3000, "imaug_steps": 1500, "caption_images_per_class": 16,
           "clipn_steps": 300, "attack_images": 8, "eps": (1 / 255, 4 / 255, 8 / 255)},
}


def sized(name: str, kind, help: str, many: bool = False, metavar: str | None = None):
    """An option whose default comes from the run's `size` (None until `DemoOptions` fills it); its help names both."""
    quick, full = (SIZES[size][name] for size in (QUICK, FULL))
    shown = (lambda v: " ".join(f"{e * 255:g}/255" if isinstance(e, float) else e for e in v)) if many else str
    return option(None, kind, f"{help} (default: {QUICK} {shown(quick)}, {FULL} {shown(full)})", many=many,
                  metavar=metavar)


@dataclass
class DemoOptions:
    """The demo's settings (`clap demo`'s flags of the same names). The sized ones left None take the `size`'s
    value (`SIZES`)."""

    out: str = option("demo_output", PATH, "folder for data, adapters, logs and the report")
    size: str = option(QUICK, Choice(tuple(SIZES)), f"{QUICK}: minutes on 2 cores (`make demo`); {FULL}: the sizes of "
                       "the committed run in experiments/demo (about an hour); options given override either")
    seed: int = option(2024, SEED, "seed of the renders; adapter seeds count up from it")
    image_types: list = sized("image_types", Choice(tuple(IMAGE_TYPES)), "image types of the test and validation "
                              "renders (their domains)", many=True, metavar="TYPE")
    adapter_seeds: int = sized("adapter_seeds", Count(), "training seeds per adapter (mean ± std)")
    images_per_class: int = sized("images_per_class", Count(2), "test images per class and domain")
    val_images_per_class: int = sized("val_images_per_class", Count(), "validation images per class and domain")
    imaug_prompts_per_class: int = sized("imaug_prompts_per_class", Count(1, 480), "Im.Aug's training data: one "
                                         "image per attribute prompt of each class (the paper's 480)")
    clap_steps: int = sized("clap_steps", Count(), "training steps of each CLAP adapter")
    imaug_steps: int = sized("imaug_steps", Count(), "training steps of each Im.Aug adapter")
    caption_images_per_class: int = sized("caption_images_per_class", Count(), "CLIPN's image-caption pairs (of the "
                                          "in-distribution classes)")
    clipn_steps: int = sized("clipn_steps", Count(), "training steps of the CLIPN adapter")
    attack_images: int = sized("attack_images", Count(), "images per domain attacked")
    eps: list = sized("eps", EPSILON, "attack budgets (8/255: the paper's)", many=True)
    jobs: int = option(available_cores(), Count(), "training runs side by side, one thread each (default: every "
                       "core; same result for any)")
    progress: bool = option(True, None, "progress bars (the command line's --no-progress)", flag=False)

    def __post_init__(self) -> None:
        for name, value in SIZES.get(self.size, {}).items():  # an unknown size: check_fields names it
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_fields(self)


def training_runs(options: DemoOptions, seeds: list[int]) -> tuple[list[Run], dict[str, list[Path]], Path]:
    """The demo's training runs (`clap.train_adapter` keywords), longest first: Im.Aug (image) and CLAP (text)
    adapters for every seed, CLAP on the in-distribution classes only (the OOD test's "CLAP (open set)") for every
    seed, CLIPN for the first; with their adapter folders ({model: [per seed]}, CLIPN's)."""
    data = Path(options.out) / "data"
    imaug = [_run(options, seed, "imaug", "image", options.imaug_steps, {"root": str(data / "imaug"), "batch_size": 32})
             for seed in seeds]
    clap = [_run(options, seed, "clap", "text", options.clap_steps, {"classes": "world", "batch_size": 32})
            for seed in seeds]
    open_set = [_run(options, seed, "clap_open_set", "text", options.clap_steps,
                     {"classes": str(data / OPEN_SET_CLASSES), "batch_size": 32}) for seed in seeds]
    clipn = _run(options, seeds[0], "clipn", "negation", options.clipn_steps,
                 {"root": str(data / "captions"), "batch_size": 64, "window": 100})
    folders = {"CLAP": [Path(run["out"]) for _, run in clap], "Im.Aug": [Path(run["out"]) for _, run in imaug],
               OPEN_SET_MODEL: [Path(run["out"]) for _, run in open_set]}
    return [*imaug, *clap, *open_set, clipn], folders, Path(clipn[1]["out"])


OPEN_SET_CLASSES = "open_set_classes.txt"
OPEN_SET_MODEL = "CLAP (open set)"


def _run(options: DemoOptions, seed: int, kind: str, route: str, steps: int, data: dict) -> Run:
    """One run's name and `clap.train_adapter` keywords: seeded, quiet (the demo shows runs, not steps), in the
    demo's folders."""
    name, out = f"{kind}_seed{seed}", Path(options.out)
    trainer = {"max_steps": steps, "enable_model_summary": False, "enable_progress_bar": False, "logger": False,
               "default_root_dir": str(out / "runs" / name)}
    return name, {"route": route, "out": str(out / "adapters" / name), "seed": seed, "trainer": trainer,
                  "data": {**data, "seed": seed}, "overwrite": True}


class Stages:
    """Numbered demo stages with their wall time."""

    def __init__(self, total: int) -> None:
        self.total, self.number, self.times, self._start = total, 0, {}, time.monotonic()
        self._name: str | None = None

    def next(self, name: str, line: str) -> None:
        self._close()
        self.number += 1
        self._name, self._start = name, time.monotonic()
        print(f"{self.number}/{self.total} {line}")

    def _close(self) -> None:
        if self._name is not None:
            self.times[self._name] = time.monotonic() - self._start
            print(f"   ({self.times[self._name]:.0f} s)")
            self._name = None

    def done(self) -> dict[str, float]:
        self._close()
        return self.times


def render(options: DemoOptions, progress: bool) -> None:
    """The demo's data: test and validation renders (the open set's validation of its classes alone), Im.Aug's
    prompt images, CLIPN's captions of the in-distribution classes, and the open set's class list."""
    from clap.data_gen.world.export import render_world
    from clap.data_gen.world.render import WorldSpec
    from clap.fileio import write_text_atomic
    from clap.prompts.classes import world_open_set

    data, types = Path(options.out) / "data", tuple(options.image_types)
    domains, open_set = WorldSpec(image_types=types), WorldSpec(classes=tuple(world_open_set()))
    render_world(data / "test", "domains", options.images_per_class, options.seed, domains, progress)
    render_world(data / "val", "domains", options.val_images_per_class, options.seed + 2, domains, progress)
    render_world(data / "val_open_set", "domains", options.val_images_per_class, options.seed + 2,
                 replace(open_set, image_types=types), progress)
    render_world(data / "imaug", "prompts", options.imaug_prompts_per_class, options.seed + 1, progress=progress)
    render_world(data / "captions", "captions", options.caption_images_per_class, options.seed + 3, open_set, progress)
    write_text_atomic(data / OPEN_SET_CLASSES, "\n".join(open_set.classes) + "\n")


def choose_alphas(trained: dict[str, list[Path]], data: Path, progress: bool) -> None:
    """Every CLAP and Im.Aug adapter's alpha on the validation render (the open-set adapters' on its ID classes)."""
    from clap.evaluation.protocols.alpha import select_alpha

    closed = [str(p) for name, paths in trained.items() if name != OPEN_SET_MODEL for p in paths]
    chosen = select_alpha(closed, data / "val", progress=progress)
    chosen |= select_alpha([str(p) for p in trained[OPEN_SET_MODEL]], data / "val_open_set", progress=progress)
    print("   " + ", ".join(f"{Path(p).name} {s['alpha']:g}" for p, s in chosen.items()))


def evaluate_all(options: DemoOptions, trained: dict[str, list[Path]], clipn: Path, progress: bool) -> tuple:
    """The closed-set and openness report ("demo": CLIP, Im.Aug, CLAP) and the OOD report ("demo_ood": CLIP,
    CLAP trained on the ID classes, CLIPN on their captions; REPE off, its corpus names every class)."""
    from clap.data_gen.world.export import world_captions
    from clap.evaluation.pipeline.evaluate import evaluate
    from clap.evaluation.inputs.setup import AdapterSpec
    from clap.evaluation.pipeline.tasks import CLOSED_SET

    specs = {name: [AdapterSpec(name, str(path), "auto") for path in paths] for name, paths in trained.items()}
    shots = [k for k in (1, 4) if k < options.images_per_class]  # 8+ shots of 32 classes: minutes of CV fits
    test, cache = Path(options.out) / "data" / "test", str(Path(options.out) / "feature_cache")  # encoded once
    report = evaluate(test, adapters=[*specs["CLAP"], *specs["Im.Aug"]], tasks=(*CLOSED_SET, "openness"),
                      name="demo", shots=shots, seed=options.seed, attack_images=options.attack_images, eps=options.eps,
                      alphas=[0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0], repe=True, captions=world_captions(test),
                      cache=cache, progress=progress)
    ood = evaluate(test, adapters=[*specs[OPEN_SET_MODEL], AdapterSpec("CLIPN", str(clipn))], tasks=("ood",),
                   name="demo_ood", seed=options.seed, cache=cache, progress=progress)
    return report, ood


def run_demo(options: DemoOptions) -> tuple:
    """Render, train, choose alpha, evaluate; prints each stage and the tables; writes the reports (demo, demo_ood)
    and claims.md into `options.out`/report. Returns the two `Report`s and the claims table."""
    from clap.evaluation.output.claims import claims_table
    from clap.evaluation.output.report import report_paths
    from clap.fileio import write_text_atomic

    out, progress, stages = Path(options.out), options.progress, Stages(6)
    print(f"the {options.size} demo" + (" (`clap demo --size full` runs the committed run's sizes, about an hour)"
                                        if options.size == QUICK else ""))
    stages.next("render", "rendering the world: test and validation domains (style-balanced), Im.Aug training "
                "images, image-caption pairs of the in-distribution classes for CLIPN")
    render(options, progress)
    seeds = [options.seed + k for k in range(options.adapter_seeds)]
    stages.next("train", f"training CLAP (text; all classes, and the ID classes for the OOD test) and Im.Aug (image) "
                f"adapters, seeds {seeds}; CLIPN, seed {seeds[0]} ({options.jobs} at a time, one thread each)")
    runs, trained, clipn = training_runs(options, seeds)
    for name, _ in runs:  # a rerun trains afresh: the last one's checkpoints would only be stale
        shutil.rmtree(out / "runs" / name, ignore_errors=True)
    train_runs(runs, options.jobs, progress)
    stages.next("alpha", "choosing each CLAP and Im.Aug adapter's alpha on the validation render")
    choose_alphas(trained, out / "data", progress)
    stages.next("evaluate", "evaluating CLIP, Im.Aug and CLAP on the test render; OOD with the open-set CLAP and CLIPN")
    report, ood = evaluate_all(options, trained, clipn, progress)
    stages.next("report", "the reports and their figures (the intervals were computed with the evaluation: "
                f"{report.statistics['bootstrap']['seconds'] + ood.statistics['bootstrap']['seconds']:.0f} s)")
    if report_paths(out / "report", "demo")[0].exists():
        print(f"replacing the previous demo report in {out / 'report'}")
    report.results["stage_seconds"] = stages.times
    report.results["demo_options"] = {k: v for k, v in asdict(options).items() if k not in ("out", "progress")}
    json_path, md_path = report.save(out / "report", overwrite=True)
    ood.save(out / "report", overwrite=True)
    claims = claims_table(report.to_dict())
    write_text_atomic(out / "report" / "claims.md", f"# The paper's claims in this run\n\n{claims}")
    stages.next("results", "results\n")
    print(report.markdown())
    print(ood.markdown())
    print(f"## The paper's claims in this run\n\n{claims}")
    total = sum(stages.done().values())
    print(f"reports: {json_path}, {md_path}, demo_ood.json/.md; plots in {out / 'report'}; total {total:.0f} s")
    return report, ood, claims
