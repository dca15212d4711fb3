"""Merge many report JSONs into one flat table: a row per (report, model), a column per metric.

In the spirit of CLIP_benchmark's `build`: each row carries the run's identity (report file, task,
dataset, backbone, protocol, seed, the adapter's checksum and alpha) and every numeric result of that
model, flattened to `task/key/.../key` column names.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable, Sequence

from clap.errors import ClapError

IDENTITY = ("report", "task", "dataset", "backbone", "protocol", "templates", "seed", "model", "alpha",
            "adapter_sha256")


def flatten(value, prefix: str) -> dict[str, float]:
    """Numeric leaves of nested dicts as {'a/b/c': value} (strings such as plot paths are dropped)."""
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}/{key}"))
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix: float(value)}
    return {}


def read_report(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClapError(f"cannot read report {path}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict) or "models" not in doc:
        raise ClapError(f"{path} is not a clap evaluation report (no 'results' and 'models')")
    for key in ("models", "statistics", "backbone", "dataset", "protocol"):
        if key in doc and not isinstance(doc[key], dict):
            raise ClapError(f"{path} is not a clap evaluation report: '{key}' is {type(doc[key]).__name__}, "
                            "not an object")
    for key, part in doc.get("statistics", {}).items():
        if key in ("seeds", "differences", "pairs") and not (isinstance(part, dict) and _nested_dicts(part)):
            raise ClapError(f"{path} is not a clap evaluation report: 'statistics.{key}' is malformed")
    return doc


def is_shard_report(path: Path) -> bool:
    """Whether a report JSON is a shard's (`clap eval --shard`): merged into a report, not a table."""
    return isinstance(read_report(path).get("shard"), dict)


def _nested_dicts(part: dict) -> bool:
    """Statistics are {task or pair: {model or task: {...}}}: objects two levels down."""
    return all(isinstance(v, dict) and all(isinstance(w, dict) for w in v.values()) for v in part.values())


def report_rows(path: Path) -> list[dict]:
    """One row per model of one report."""
    doc = read_report(path)
    backbone = doc.get("backbone", {})
    base = {"report": str(path), "task": doc.get("task"), "dataset": doc.get("dataset", {}).get("root"),
            "backbone": f"{backbone.get('family')} {backbone.get('model')} ({backbone.get('pretrained')})",
            "protocol": (doc.get("protocol") or {}).get("name"), "templates": _templates(doc["results"]),
            "seed": doc.get("seed")}
    rows = []
    for model, info in doc["models"].items():
        row = {**base, "model": model, "alpha": info.get("alpha"), "adapter_sha256": info.get("adapter_sha256")}
        for task, per_model in doc["results"].items():
            if isinstance(per_model, dict) and model in per_model:
                row.update(flatten(per_model[model], task))
        rows.append(row)
    return rows


def _templates(results: dict) -> str | None:
    """The PC templates the report's zero-shot scores used, one cell (a `--templates` run's rows differ here)."""
    from clap.evaluation.output.report import pc_templates_used

    used = {t for templates in pc_templates_used(results).values() for t in templates}
    return "; ".join(sorted(used)) or None


def merge_reports(paths: Iterable[str | Path]) -> tuple[list[str], list[dict]]:
    """The columns (identity first, metrics sorted) and the rows of all reports."""
    rows = [row for p in paths for row in report_rows(Path(p))]
    if not rows:
        raise ClapError("no reports to merge; pass one or more report JSON files")
    metrics = sorted({k for row in rows for k in row} - set(IDENTITY))
    return [*IDENTITY, *metrics], rows


def to_csv(columns: Sequence[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(columns: Sequence[str], rows: list[dict]) -> str:
    def cell(value) -> str:
        if value is None or value == "":
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
