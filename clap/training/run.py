"""`clap.train_adapter`: train one adapter from Python, exactly as `clap train` does.

    adapter, summary = clap.train_adapter("text", "adapters/world", data={"classes": "world"},
                                          trainer={"max_steps": 3000}, seed=0)

`out=None` returns the adapter in memory and keeps nothing on disk. The keywords become `clap train`'s
options (`data={"batch_size": 32}` is `--data.batch_size 32`), and
the same LightningCLI builds the same Lightning module and data module of the route, so the same seed
gives the same adapter, bit for bit, as the command line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from clap.errors import ClapError

ROUTES = {"text": ("CLAPModule", "PromptDataModule"), "image": ("ImAugModule", "ImageDataModule"),
          "negation": ("CLIPNModule", "CaptionDataModule"), "segmentation": ("SegmentationModule", "SceneDataModule")}


def train_arguments(route: str, out: str | Path, data: Mapping[str, Any] | None = None,
                    model: Mapping[str, Any] | None = None, trainer: Mapping[str, Any] | None = None,
                    seed: int = 0, config: str | Path | None = None, overwrite: bool = False) -> list[str]:
    """The `clap train` arguments of a training run given as Python values."""
    if route not in ROUTES:
        raise ClapError(f"unknown route '{route}'; use one of {', '.join(ROUTES)}")
    model_class, data_class = ROUTES[route]
    argv = [*(["--config", str(config)] if config else []), "--seed_everything", str(seed),
            "--model", model_class, "--data", data_class]
    for group, values in (("trainer", trainer), ("model", model), ("data", data)):
        for key, value in (values or {}).items():
            argv += [f"--{group}.{key}", _option_text(value)]
    return [*argv, "--out", str(out), *(["--overwrite"] if overwrite else [])]


def _option_text(value: Any) -> str:
    """A Python value as the command line writes it (strings as they are, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def train_adapter(route: str = "text", out: str | Path | None = "adapter", *, data: Mapping[str, Any] | None = None,
                  model: Mapping[str, Any] | None = None, trainer: Mapping[str, Any] | None = None, seed: int = 0,
                  config: str | Path | None = None, overwrite: bool = False):
    """Train an adapter of `route` ("text": CLAP, "image": Im.Aug, "negation": CLIPN, "segmentation": VL4AD's mask
    decoder) into `out`; returns the trained adapter and its training summary. With `out=None` nothing is kept on
    disk: the run (its checkpoints too, unless `trainer` names a default_root_dir) goes to a temporary folder and
    the adapter comes back in memory. Bad options raise `ClapError` (Lightning's notes on the machine, e.g. "GPU
    available", are not printed)."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="clap-train-") as folder:
            trainer = {"default_root_dir": str(Path(folder) / "runs"), **(trainer or {})}
            adapter, summary = train_adapter(route, Path(folder) / "adapter", data=data, model=model, trainer=trainer,
                                             seed=seed, config=config)
            return adapter, {**summary, "adapter": None}
    from clap.adapter.disentangler import SUMMARY_NAME, SavedAdapter
    from clap.training.cli import main

    with _quiet("lightning.pytorch", "lightning.fabric"):
        main(train_arguments(route, out, data, model, trainer, seed, config, overwrite))
    summary = json.loads((Path(out) / SUMMARY_NAME).read_text(encoding="utf-8"))
    return SavedAdapter.from_pretrained(out), summary


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only warnings and errors from these loggers inside the block."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(max(logging.WARNING, levels[name]))
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
