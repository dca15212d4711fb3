"""What a task of the table (`clap.evaluation.pipeline.tasks`) hands back to `clap.evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Figure = Callable[[Path], object]


@dataclass
class TaskOutput:
    """What a task adds to a report: its entries, its measures for intervals, its figures to draw, the report's
    top-level entries it sets (e.g. its protocol), where they differ from images within domains, the levels its
    bootstrap resamples, and (a `RecordedTask`) the records it was built from."""

    rows: dict
    measures: dict = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    levels: tuple[str, ...] | None = None
    records: dict[str, TaskRecords] = field(default_factory=dict)  # {task: what a `RecordedTask` built it from}

    def add(self, other: TaskOutput) -> None:
        """Take in another task's output (its entries, measures, figures, top-level entries, records; its levels
        where it has its own)."""
        self.rows.update(other.rows)
        self.measures.update(other.measures)
        self.figures.update(other.figures)
        self.run.update(other.run)
        self.records.update(other.records)
        self.levels = other.levels or self.levels


@dataclass
class TaskRecords:
    """What a `RecordedTask`'s rows and intervals are computed from: per-image records {key: {model: {domain:
    record}}} (a record: arrays, or nested dicts of them) and the report entries that do not depend on the images
    (the same in every shard of an evaluation)."""

    records: dict
    entries: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedTask:
    """A task in two steps: `collect(setup, options, repe) -> TaskRecords` (the models on the images) and
    `build(records, options) -> TaskOutput` (rows, measures, figures). Domains evaluated apart (shards) merge into
    exactly the output of one run: `build` of the records joined. A shard's output keeps its records (for
    `merge_shards`); a whole run's drops them once built (its measures keep what the intervals need)."""

    name: str
    collect: Callable
    build: Callable

    def __call__(self, setup, options, repe) -> TaskOutput:
        records = self.collect(setup, options, repe)
        output = self.build(records, options)
        output.records = {self.name: records} if options.shard is not None else {}
        return output
