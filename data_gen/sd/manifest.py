"""Manifest shards: each process appends its rows; the main process merges them at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from clap.fileio import write_text_atomic

MANIFEST = "manifest.jsonl"


def shard_path(root: Path, rank: int) -> Path:
    return root / f"manifest.rank{rank}.jsonl"


def append_rows(path: Path, rows: Iterable[dict]) -> None:
    """Append rows and flush them to disk (a kill leaves at most one partial last line)."""
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict]:
    """Rows of a shard or manifest, ignoring a truncated last line left by a killed run."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def merge_shards(root: Path, order: list[str]) -> Path:
    """Write manifest.jsonl: one row per existing image, in job order, from all shards and any old manifest."""
    rows: dict[str, dict] = {r["path"]: r for r in read_rows(root / MANIFEST)}
    for shard in sorted(root.glob("manifest.rank*.jsonl")):
        rows.update({r["path"]: r for r in read_rows(shard)})
    merged = [rows[p] for p in order if p in rows and (root / p).is_file()]
    target = root / MANIFEST
    write_text_atomic(target, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in merged))
    for shard in root.glob("manifest.rank*.jsonl"):
        shard.unlink()
    return target
