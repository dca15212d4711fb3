"""`clap.evaluate`: the whole evaluation as a library call, returning a `Report`.

    report = clap.evaluate("data/test", adapters=["CLAP=adapters/clap"], tasks=("zeroshot", "fewshot"), shots=[1, 4])
    report.results["zeroshot"]["CLAP"]["mean"]["C"]; report.statistics["differences"]
    report.save("eval_report")  # zeroshot.json, zeroshot.md and the plots, as `clap eval` writes them

`clap eval` parses its arguments into the same `EvalOptions` and calls this function.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from clap.errors import ClapError
from clap.evaluation.inputs.shard import Shard
from clap.evaluation.pipeline.task_output import Figure, TaskOutput, TaskRecords
from clap.evaluation.pipeline.tasks import (CLOSED_SET, SCENE_TASKS, EvalOptions, check_task_options, check_tasks,
                                           run_tasks)

if TYPE_CHECKING:
    from clap.backbones.base import Backbone
    from clap.evaluation.inputs.setup import EvalSetup

LOCAL_OPTIONS = ("shard", "device", "progress", "cache")  # may differ between the shards of one evaluation
BOOTSTRAP_LEVELS = ("training seeds of a seed group, with replacement", "images within each domain (within each class "
                    "for openness; a shared OOD set once), the same for every model", "noise draws of ZS(NC)",
                    "few-shot shot draws within each domain, the same for every model")


@dataclass
class Report:
    """An evaluation's results: what the JSON report holds (`to_dict`), its tables (`markdown`) and the figures
    `save` draws. Results name figures by file name, relative to the folder the report is saved in."""

    task: str
    setup: dict
    run: dict
    results: dict
    statistics: dict
    figures: dict[str, Figure] = field(default_factory=dict, repr=False)
    created: str = field(default_factory=lambda: datetime.datetime.now().isoformat(timespec="seconds"))
    records: dict[str, TaskRecords] | None = field(default=None, repr=False)  # a shard's: saved beside its JSON

    def to_dict(self) -> dict:
        from clap.evaluation.output.report import report_document

        return report_document(self.task, self.setup, self.results, self.run, self.statistics, self.created)

    def markdown(self) -> str:
        from clap.evaluation.output.report import markdown

        shard = self.run.get("shard")
        note = "" if shard is None else (f"Shard {shard['index']} of {shard['count']}: its domains alone, without "
                                         "intervals; `clap report merge` of every shard gives the whole report.\n\n")
        return note + markdown(self.results, self.statistics)

    def save(self, folder: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
        """Draw the figures into `folder` and write <task>.json and <task>.md there (a shard's also its records:
        <task>.records.safetensors); an earlier report of the same task is replaced only with `overwrite`. Returns the
        JSON and Markdown paths."""
        from clap.evaluation.output.report import claim_report, write_report
        from clap.fileio import folder_lock, writable_folder

        dataset = (self.setup.get("dataset") or {}).get("root")
        folder = writable_folder(folder, "report folder", outside=dataset)
        claim_report(folder, self.task, overwrite)
        with folder_lock(folder, "a report"):
            folder.mkdir(parents=True, exist_ok=True)
            for draw in self.figures.values():
                draw(folder)
            if self.records is not None:
                from clap.evaluation.pipeline.records import records_name, save_records

                save_records(folder / records_name(self.task), self.records)
            return write_report(folder, self.to_dict(), self.markdown())


def adapter_specs(adapters: Sequence | Mapping | str | None) -> list:
    """`AdapterSpec`s from what a user holds: "NAME=PATH[@ALPHA|@auto]" strings or `AdapterSpec`s (one or a list),
    or a mapping NAME -> an adapter object (`Disentangler`), a path, "PATH@ALPHA", an (adapter or path, alpha)
    pair, or a list of these (one per training seed)."""
    from clap.evaluation.inputs.setup import AdapterSpec

    if adapters is None:
        return []
    if isinstance(adapters, Mapping):
        return [_named_spec(str(name), value) for name, values in adapters.items()
                for value in (values if isinstance(values, list) else [values])]
    out = []
    for item in [adapters] if isinstance(adapters, (str, Path, AdapterSpec)) else adapters:
        if isinstance(item, AdapterSpec):
            out.append(item)
        elif isinstance(item, (str, Path)):
            out.append(AdapterSpec.parse(str(item)))
        else:
            raise ClapError(f"adapters: a {type(item).__name__} in a list has no name; give a mapping such as "
                            "{'CLAP': adapter} or 'NAME=PATH' strings")
    return out


def _named_spec(name: str, value):
    """One NAME's spec from an adapter object, a path, "PATH@ALPHA" or an (adapter or path, alpha) pair."""
    from clap.adapter.disentangler import Disentangler
    from clap.evaluation.inputs.setup import IN_MEMORY, AdapterSpec
    from clap.options import ALPHA

    if "#" in name or not name:
        raise ClapError(f"adapter name '{name}' must be non-empty and without '#'")
    alpha = None
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ClapError(f"adapter '{name}': a tuple must be (adapter or path, alpha), got {len(value)} items")
        value, alpha = value
        alpha = alpha if alpha == "auto" else ALPHA.check(f"adapter '{name}' alpha", alpha)
    if isinstance(value, Disentangler):
        spec = AdapterSpec(name, IN_MEMORY, alpha, adapter=value)
    elif isinstance(value, (str, Path)):
        spec = AdapterSpec.parse(f"{name}={value}") if isinstance(value, str) else AdapterSpec(name, str(value))
        spec = spec if alpha is None else replace(spec, alpha=alpha)
    else:
        raise ClapError(f"adapter '{name}' must be an adapter (Disentangler), a path, 'PATH@ALPHA' or an (adapter or "
                        f"path, alpha) pair, got {type(value).__name__}")
    return spec


def evaluate(dataset: str | Path, backbone: Backbone | Mapping | None = None,
             adapters: Sequence | Mapping | str | None = None,
             tasks: Sequence[str] | str = ("zeroshot",), options: EvalOptions | None = None, *,
             name: str | None = None, **overrides) -> Report:
    """Evaluate CLIP and `adapters` on a root/domain/class/image `dataset` with the given tasks ("all": the
    closed-set ones).

    `backbone`: a `Backbone` (`clap.load_backbone(...)`, used on its own device) or `load_backbone`'s keywords
    (default: the embedded tiny CLIP on `device`). `adapters`: see `adapter_specs` (e.g. {"CLAP": adapter},
    {"CLAP": ["run0", "run1"]} for seeds, {"CLAP": ("run0", 0.3)}, or ["CLAP=run0@auto"]). The options are
    `EvalOptions` fields (or `options`); a single value stands for a list of one (`shots=1`), `templates` takes
    one template, a list or a file. `name` names the report (default: the task, or "all"). With `shard` ("I/N"),
    only the shard's domains are evaluated and the report, without intervals, carries the records that
    `merge_shards` joins. Bad input raises `ClapError` (one line)."""
    from clap.evaluation.inputs.setup import build_setup

    options = _options(options, overrides)
    task_names = _task_names(tasks)
    check_task_options(task_names, options)
    shard = Shard.parse(options.shard) if options.shard is not None else None
    if set(task_names) & set(SCENE_TASKS):
        from clap.evaluation.pipeline.scene_setup import build_scene_setup

        setup = build_scene_setup(dataset, adapter_specs(adapters), backbone, options)
    else:
        setup = build_setup(dataset, adapter_specs(adapters), backbone, options.cache,
                            shard.device(options.device) if shard else options.device, options.ignore_classes,
                            progress=options.progress, precision=options.precision,
                            unknown=unknown_classes(task_names, options), shard=shard)
    output = run_tasks(setup, task_names, options)
    name = name or (tasks if isinstance(tasks, str) else "+".join(task_names))
    if shard is not None:
        return shard_report(name, setup, options, output, shard, run_info(options) | output.run)
    stats = statistics([*setup.models, *setup.negation], options.n_boot, options.seed, output.rows, output.measures,
                       output.levels or BOOTSTRAP_LEVELS)
    return Report(name, setup.describe(), run_info(options) | output.run, output.rows, stats, output.figures)


def shard_report(name: str, setup: EvalSetup, options: EvalOptions, output: TaskOutput, shard: Shard,
                 run: dict) -> Report:
    """A shard's report: its domains' rows (no intervals: those come at the merge) and the records behind them."""
    from clap.evaluation.pipeline.records import records_name

    info = {"index": shard.index, "count": shard.count, "tasks": list(output.records), "records": records_name(name),
            "options": {k: v for k, v in vars(options).items() if k not in LOCAL_OPTIONS}}
    return Report(name, setup.describe(), run | {"shard": info}, output.rows, {}, output.figures,
                  records=output.records)


def unknown_classes(tasks: Sequence[str], options: EvalOptions) -> tuple[str, ...]:
    """Classes an adapter need not have been trained for: an OOD test's held-out classes (given, or the world's),
    when OOD detection is the only task (every other task classifies them)."""
    if tuple(tasks) != ("ood",) or options.ood:
        return ()
    if options.ood_classes is not None:
        return tuple(options.ood_classes)
    from clap.prompts.classes import world_held_out

    return tuple(world_held_out())


def _options(options: EvalOptions | Mapping | None, overrides: dict) -> EvalOptions:
    """`options` (EvalOptions or a mapping of its fields) with `overrides` on top."""
    if isinstance(options, Mapping):
        options, overrides = None, {**options, **overrides}
    elif options is not None and not isinstance(options, EvalOptions):
        raise ClapError(f"options must be EvalOptions or a mapping of its fields, got {type(options).__name__}")
    unknown = sorted(set(overrides) - set(EvalOptions.names()))
    if unknown:
        raise ClapError(f"unknown evaluation option '{unknown[0]}'; the options are {', '.join(EvalOptions.names())}")
    if options is None:
        return EvalOptions(**overrides)
    return EvalOptions(**{**vars(options), **overrides}) if overrides else options


def _task_names(tasks: Sequence[str] | str) -> tuple[str, ...]:
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks) if isinstance(tasks, (list, tuple)) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ClapError(f"tasks must be a task name or a list of them (e.g. 'zeroshot' or ['zeroshot', 'ood']), "
                        f"got {tasks!r}")
    names = tuple(t for n in names for t in (CLOSED_SET if n == "all" else (n,)))
    check_tasks(names)
    return names


def run_info(options: EvalOptions) -> dict:
    return {"seed": options.seed, "protocol": protocol_info(options.protocol),
            "device_option": options.device}  # "auto" or as given; the backbone's record says where it ran


def protocol_info(protocol: str) -> dict[str, str]:
    """The report's record of how few-shot probes are scored and what the attacks perturb."""
    from clap.evaluation.protocols.fewshot import few_shot_scoring

    return {"name": protocol, "fewshot_scoring": few_shot_scoring(protocol),
            "attack_inputs": ("normalised tensors clamped to [0, 1], cross-entropy on unscaled cosines, CW confidence "
                              "50, clean row clamped too (the authors' normalised-tensor threat model)"
                              if protocol == "paper" else "pixels in [0, 1]")}


def statistics(models: list[str], n_boot: int, seed: int, results: dict, measures: dict,
               levels: tuple[str, ...] = BOOTSTRAP_LEVELS) -> dict:
    """Seed summaries of the models' seed groups and the two-level bootstrap intervals of every difference to
    CLIP, with the resampled levels and their cost."""
    from clap.evaluation.statistics.resample import Resamples
    from clap.evaluation.inputs.setup import BASELINE
    from clap.evaluation.statistics.stats import differences, seed_groups, seed_summary

    start = time.monotonic()
    out = {"seeds": seed_summary(results, seed_groups(models)),
           **differences(BASELINE, measures, Resamples(n_boot, seed)),
           "bootstrap": {"resamples": n_boot, "levels": levels}}
    out["bootstrap"]["seconds"] = round(time.monotonic() - start, 1)
    return out
