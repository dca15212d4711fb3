"""A shard's per-image records on disk: every task's `TaskRecords` in one safetensors file beside its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from clap.errors import ClapError
from clap.evaluation.pipeline.task_output import TaskRecords

RECORDS_FORMAT = "clap shard records 1"


def records_name(task: str) -> str:
    return f"{task}.records.safetensors"


def save_records(path: Path, records: dict[str, TaskRecords]) -> None:
    """Every task's records in one safetensors file (an array per leaf, keyed by its path as JSON, in order) with
    the tasks' entries in its metadata; written atomically."""
    from safetensors.numpy import save

    from clap.fileio import atomic_file

    arrays = {json.dumps([task, *keys]): np.ascontiguousarray(leaf)
              for task, found in records.items() for keys, leaf in _leaves(found.records)}
    metadata = {"format": RECORDS_FORMAT, "order": json.dumps(list(arrays)),
                "entries": json.dumps({task: found.entries for task, found in records.items()})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, binary=True) as f:
        f.write(save(arrays, metadata=metadata))


def _leaves(tree: dict, keys: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], np.ndarray]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*keys, key))
        else:
            yield (*keys, key), np.asarray(value)


def load_records(path: Path) -> dict[str, TaskRecords]:
    """The records `save_records` wrote, nested as they were, in their order."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != RECORDS_FORMAT:
                raise ClapError(f"{path} is not a shard's records file (format {metadata.get('format')!r})")
            out = {task: TaskRecords({}, entries) for task, entries in json.loads(metadata["entries"]).items()}
            for name in json.loads(metadata["order"]):
                task, *keys, leaf = json.loads(name)
                node = out[task].records
                for key in keys:
                    node = node.setdefault(key, {})
                node[leaf] = f.get_tensor(name)
    except (OSError, SafetensorError, KeyError, ValueError) as e:
        raise ClapError(f"cannot read the shard records {path}: {e}") from None
    return out
