"""Callbacks: export the trained adapter with its resolved training config and a JSON training summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from clap import __version__
from clap.adapter.disentangler import SUMMARY_NAME
from clap.fileio import write_text_atomic
from clap.training.modules import WINDOW_METRIC


CONFIG_FILE = "training_config.yaml"
INTERRUPTED_CKPT = "interrupted.ckpt"


class AdapterExport(L.Callback):
    """At the end of fit, write into `out_dir` the adapter (save_pretrained), the resolved training config
    (`training_config.yaml`, what `clap train --config` reruns) and `training_summary.json`, each atomically."""

    def __init__(self, out_dir: str = "adapter", resolved_config: str = "", seed: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.resolved_config = resolved_config
        self.seed = seed
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

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """On Ctrl-C: a checkpoint of this exact step to resume from, a summary that says so, and no adapter."""
        if not isinstance(exception, KeyboardInterrupt):
            return
        checkpoint = interrupted_checkpoint(trainer)
        if trainer.global_step == 0:  # still setting up: nothing to resume (the adapter may not exist yet)
            return
        trainer.save_checkpoint(checkpoint, weights_only=False)  # full state: loops, optimiser, callbacks
        if trainer.is_global_zero:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            summary = {"status": "interrupted", "steps": trainer.global_step, "max_steps": trainer.max_steps,
                       "resume_from": str(checkpoint), "window_losses": self.windows, "clap_version": __version__}
            write_text_atomic(self.out_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        config = pl_module.adapter.config
        config.backbone = data.backbone_identity
        config.classes = list(data.classes)
        config.dataset = data.dataset
        hparams = _plain(pl_module.resolved_hparams())
        config.training = {"module": type(pl_module).__name__, **hparams, "seed": self.seed,
                           "data": _plain(data.hparams), "steps": trainer.global_step,
                           "max_steps": trainer.max_steps, "world_size": trainer.world_size}
        pl_module.adapter.save_pretrained(self.out_dir)
        write_text_atomic(self.out_dir / CONFIG_FILE, self.resolved_config)
        stopped = next((cb.stopped_epoch for cb in trainer.callbacks
                        if isinstance(cb, L.pytorch.callbacks.EarlyStopping) and cb.stopped_epoch), None)
        summary = {"status": "completed", "adapter": str(self.out_dir), "route": config.route,
                   "steps": trainer.global_step, "max_steps": trainer.max_steps, "stopped_early": stopped is not None,
                   "training_data": data.training_data(), "window_losses": self.windows,
                   "last_loss": _metric(trainer, "train/loss"),
                   "wall_seconds": time.monotonic() - self._start, "clap_version": __version__}
        write_text_atomic(self.out_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")


def interrupted_checkpoint(trainer) -> Path:
    """Where an interrupted run leaves its checkpoint: beside the periodic ones."""
    folder = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    return Path(folder or Path(trainer.default_root_dir) / "checkpoints") / INTERRUPTED_CKPT


def _plain(hparams) -> dict:
    return {k: v for k, v in dict(hparams).items()
            if not k.startswith("_") and isinstance(v, (int, float, str, bool, list, type(None)))}


def _metric(trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)
