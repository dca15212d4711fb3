"""Callbacks: export the trained adapter with its config and a JSON training summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from clap import __version__
from clap.training.modules import WINDOW_METRIC


class AdapterExport(L.Callback):
    """At the end of fit, write the adapter (save_pretrained) and training_summary.json into `out_dir`."""

    def __init__(self, out_dir: str = "adapter") -> None:
        self.out_dir = Path(out_dir)
        self.windows: list[dict] = []
        self._start = time.monotonic()

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(WINDOW_METRIC)
        if value is not None:
            self.windows.append({"step": trainer.global_step, "mean_loss": float(value)})

    def state_dict(self) -> dict:
        return {"windows": self.windows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.windows = list(state_dict.get("windows", []))

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        config = pl_module.adapter.config
        config.backbone = data.backbone_identity
        config.classes = list(data.classes)
        config.dataset = data.dataset
        config.training = {"module": type(pl_module).__name__, **_plain(pl_module.hparams),
                           "data": _plain(data.hparams), "steps": trainer.global_step,
                           "max_steps": trainer.max_steps, "world_size": trainer.world_size}
        pl_module.adapter.save_pretrained(self.out_dir)
        stopped = next((cb.stopped_epoch for cb in trainer.callbacks
                        if isinstance(cb, L.pytorch.callbacks.EarlyStopping) and cb.stopped_epoch), None)
        summary = {"adapter": str(self.out_dir), "route": config.route, "steps": trainer.global_step,
                   "max_steps": trainer.max_steps, "stopped_early": stopped is not None,
                   "window_losses": self.windows, "last_loss": _metric(trainer, "train/loss"),
                   "wall_seconds": time.monotonic() - self._start, "clap_version": __version__}
        (self.out_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _plain(hparams) -> dict:
    return {k: v for k, v in dict(hparams).items()
            if not k.startswith("_") and isinstance(v, (int, float, str, bool, list, type(None)))}


def _metric(trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)
