"""Sharded evaluation: each shard (`EvalOptions.shard`, `clap.evaluation.inputs.shard`) reports its domains and saves
the per-image records its rows came from; `merge_shards` joins the records of all shards in the dataset's domain
order and computes the report one run over every domain gives: the same rows, and the same intervals (a resample's
weights are keyed by (seed, stratum, chunk), so they are the same whichever process draws them).

    clap eval zeroshot --dataset DATA --adapter CLAP=run0 --shard 1/3 --out report   # report/shard-1-of-3/
    ... --shard 2/3, --shard 3/3 (other machines, or torchrun ranks with --shard torchrun)
    clap report merge report/shard-*/zeroshot.json --out report
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from clap.errors import ClapError
from clap.evaluation.pipeline.evaluate import BOOTSTRAP_LEVELS, Report, statistics
from clap.evaluation.pipeline.records import load_records
from clap.evaluation.pipeline.task_output import TaskOutput, TaskRecords

SAME = ("task", "dataset.classes", "dataset.all_domains", "backbone.family", "backbone.model", "backbone.pretrained",
        "backbone.checksum", "backbone.precision", "seed", "protocol", "shard.count", "shard.tasks", "shard.options")
"""What the shards of one evaluation share (where the dataset and the adapters lie may differ between machines)."""
IDENTITY = ("alpha", "route", "adapter_dims", "training_seed", "prompt_tokens", "adapter_sha256")


def merge_shards(paths: Sequence[str | Path]) -> Report:
    """The report of one run over every domain from the reports of its N shards (each beside its records file):
    rows from the joined records, intervals drawn as one run draws them. Shards must be of one evaluation (`SAME`,
    and adapters of the same checksums and alphas) and all present, each once."""
    from clap.evaluation.output.merge import read_report

    docs = [(Path(p), read_report(Path(p))) for p in paths]
    first = check_shards(docs)
    shards = sorted(docs, key=lambda item: item[1]["shard"]["index"])
    records = [load_records(path.parent / doc["shard"]["records"]) for path, doc in shards]
    return merged_report(first, [doc for _, doc in shards], join_records(records, first["dataset"]["all_domains"]))


def check_shards(docs: list[tuple[Path, dict]]) -> dict:
    """The first shard's report, once every report is a shard of the same evaluation and none is missing."""
    if not docs:
        raise ClapError("no shard reports to merge; pass the report JSON of every shard")
    for path, doc in docs:
        if not isinstance(doc.get("shard"), dict):
            raise ClapError(f"{path} is not a shard's report (`clap eval ... --shard I/N` writes them); merge shards "
                            "alone, or reports without shards alone")
    (first_path, first), *rest = docs
    for path, doc in rest:
        for key in SAME:
            if _at(doc, key) != _at(first, key):
                raise ClapError(f"{path} and {first_path} are shards of different evaluations: their {key} differ")
        if _models(doc) != _models(first):
            raise ClapError(f"{path} and {first_path} are shards of different evaluations: their adapters differ")
    count, indices = first["shard"]["count"], sorted(doc["shard"]["index"] for _, doc in docs)
    if indices != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(indices))
        twice = sorted({i for i in indices if indices.count(i) > 1})
        problem = f"shard {missing[0]}/{count} is missing" if missing else f"shard {twice[0]}/{count} is given twice"
        raise ClapError(f"{problem}; give the report of each of the {count} shards once")
    return first


def _models(doc: dict) -> dict:
    """Each model's identity: its weights' checksum and how it is applied, not where its files lie."""
    return {name: {k: info.get(k) for k in IDENTITY} for name, info in doc["models"].items()}


def _at(doc: dict, dotted: str):
    for key in dotted.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def join_records(shards: list[dict[str, TaskRecords]], domains: list[str]) -> dict[str, TaskRecords]:
    """Every task's records with the shards' domains joined, in the dataset's domain order."""
    out = {}
    for task, found in shards[0].items():
        joined: dict = {}
        for key, by_model in found.records.items():
            joined[key] = {}
            for model in by_model:
                parts = {d: r for shard in shards for d, r in shard[task].records[key][model].items()}
                joined[key][model] = {d: parts[d] for d in domains if d in parts}
        out[task] = TaskRecords(joined, found.entries)
    return out


def merged_report(first: dict, shards: list[dict], records: dict[str, TaskRecords]) -> Report:
    """The report of the joined records: each task built from them, then the statistics over every domain."""
    from clap.evaluation.pipeline.tasks import RECORDED, EvalOptions

    options = EvalOptions(**first["shard"]["options"], progress=False)
    output = TaskOutput({})
    for task, found in records.items():
        output.add(RECORDED[task].build(found, options))
    output.rows["task_seconds"] = {task: round(sum(doc["results"]["task_seconds"][task] for doc in shards), 1)
                                   for task in records}
    stats = statistics(list(first["models"]), options.n_boot, options.seed, output.rows, output.measures,
                       output.levels or BOOTSTRAP_LEVELS)
    domains = first["dataset"]["all_domains"]
    dataset = {**first["dataset"], "domains": domains, "images": _joined(shards, "images", domains),
               "skipped": _joined(shards, "skipped", domains)}
    del dataset["all_domains"]
    setup = {"dataset": dataset, "backbone": first["backbone"], "models": first["models"]}
    run = {key: first[key] for key in ("seed", "protocol", "device_option")}
    run["merged_shards"] = [{"index": doc["shard"]["index"], "domains": doc["dataset"]["domains"],
                             "device": doc["backbone"]["device"]} for doc in shards]
    return Report(first["task"], setup, run, output.rows, stats, output.figures)


def _joined(shards: list[dict], key: str, domains: list[str]) -> dict:
    """{domain: count} of the shards' dataset records, in the dataset's domain order."""
    counts = {d: n for doc in shards for d, n in doc["dataset"][key].items()}
    return {d: counts[d] for d in domains if d in counts}
