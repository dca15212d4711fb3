"""What a task of the table (`clap.evaluation.pipeline.tasks`) hands back to `clap.evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Figure = Callable[[Path], object]


@dataclass
class TaskOutput:
    """What a task adds to a report: its entries, its measures for intervals, its figures to draw, the report's
    top-level entries it sets (e.g. its protocol) and, where they differ from images within domains, the levels its
    bootstrap resamples."""

    rows: dict
    measures: dict = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    levels: tuple[str, ...] | None = None
