"""`fit`: the training core that `clap train` (LightningCLI) and `clap.train_adapter` both run: a route's Lightning
module on its data module, under the method's early stopping and periodic checkpoints, exporting the adapter.

    import lightning as L
    from clap.training.fit import fit
    from clap.training.modules import CLAPModule
    from clap.training.text_data import PromptDataModule

    L.seed_everything(0, workers=True)  # before building the module, as `clap train` does
    adapter, summary = fit(CLAPModule(), PromptDataModule(classes="world"), out=None, trainer={"max_steps": 3000})
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from clap.adapter.disentangler import SUMMARY_NAME
from clap.training.callbacks import AdapterExport, interrupted_checkpoint
from clap.training.modules import WINDOW_METRIC

TRAINER_DEFAULTS = {
    "max_steps": 8000,
    "max_epochs": -1,
    "reload_dataloaders_every_n_epochs": 1,  # each epoch is one early-stopping window of steps
    "use_distributed_sampler": False,  # each rank draws its own samples (seeded by rank)
    "deterministic": True,
    "log_every_n_steps": 50,
}
EARLY_STOPPING = {"monitor": WINDOW_METRIC, "patience": 5, "min_delta": 0.01, "mode": "min",
                  "check_on_train_epoch_end": True, "strict": False}  # the method's: the mean loss of each window
CHECKPOINT = {"every_n_train_steps": 480, "save_last": True, "save_top_k": 1}


def method_trainer(settings: Mapping[str, Any] | None = None) -> L.Trainer:
    """A Trainer with the method's defaults, early stopping and periodic checkpoints; `settings` (Trainer keywords)
    on top."""
    callbacks = [EarlyStopping(**EARLY_STOPPING), ModelCheckpoint(**CHECKPOINT), *(settings or {}).get("callbacks", [])]
    return L.Trainer(**{**TRAINER_DEFAULTS, **(settings or {}), "callbacks": callbacks})


def fit(module: L.LightningModule, data: L.LightningDataModule, out: str | Path | None = "adapter",
        trainer: L.Trainer | Mapping[str, Any] | None = None, *, seed: int | None = None, ckpt_path: str | None = None,
        config_text: str = "") -> tuple:
    """Train `module` (an `AdapterModule`) on `data` and export the adapter into `out` (adapter files,
    `training_summary.json`, `config_text` as the run's `training_config.yaml`); returns the adapter and its summary.
    `trainer`: a Trainer, or Trainer keywords over the method's (`method_trainer`); `seed` is recorded (seed the run
    before building the module). With `out=None` the run goes to a temporary folder and the adapter comes back in
    memory. Ctrl-C saves a checkpoint of the exact step and raises KeyboardInterrupt saying how to resume."""
    from clap.adapter.disentangler import SavedAdapter

    if out is None:
        with tempfile.TemporaryDirectory(prefix="clap-fit-") as folder:
            settings = trainer if isinstance(trainer, L.Trainer) else {"default_root_dir": folder, **(trainer or {})}
            adapter, summary = fit(module, data, Path(folder) / "adapter", settings, seed=seed, ckpt_path=ckpt_path,
                                   config_text=config_text)
            return adapter, {**summary, "adapter": None}
    trainer = trainer if isinstance(trainer, L.Trainer) else method_trainer(trainer)
    trainer.callbacks.append(AdapterExport(str(out), config_text, seed))
    _run(trainer, module, data, ckpt_path)
    if not trainer.is_global_zero:
        return None, {}
    return SavedAdapter.from_pretrained(out), json.loads((Path(out) / SUMMARY_NAME).read_text(encoding="utf-8"))


def _run(trainer: L.Trainer, module: L.LightningModule, data: L.LightningDataModule, ckpt_path: str | None) -> None:
    """trainer.fit (Lightning's progress and messages on stderr, as every clap command shows its progress); Ctrl-C
    ends with a KeyboardInterrupt that says how to resume."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    except SystemExit:  # Lightning's answer to Ctrl-C, after its callbacks' on_exception
        if not trainer.interrupted:
            raise
        checkpoint = interrupted_checkpoint(trainer)
        if trainer.global_step == 0 or not checkpoint.is_file():
            raise KeyboardInterrupt("stopped before the first training step, nothing to resume; rerun the same "
                                    "command") from None
        raise KeyboardInterrupt(f"stopped at step {trainer.global_step}, no adapter exported; resume with "
                                f"the same command and --ckpt_path {checkpoint}") from None
