"""`clap train`: LightningCLI over the adapter modules and data modules, with YAML configs.

    clap train --config experiments/configs/world_clap.yaml [--out DIR] [--ckpt_path last.ckpt]
    clap train --print_config                      # the full default config (CLAP text route)
    clap train --model ImAugModule --data ImageDataModule --data.root IMAGES   # Im.Aug image route
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from clap.errors import ClapError
from clap.options import PATH
from clap.training.callbacks import AdapterExport, interrupted_checkpoint
from clap.training.image_data import ImageDataModule  # noqa: F401  (registers the class for --data)
from clap.training.modules import WINDOW_METRIC, AdapterModule, CLAPModule, CLIPNModule, ImAugModule  # noqa: F401
from clap.training.text_data import PromptDataModule  # noqa: F401
from clap.training.caption_data import CaptionDataModule  # noqa: F401

TRAINER_DEFAULTS = {
    "max_steps": 8000,
    "max_epochs": -1,
    "reload_dataloaders_every_n_epochs": 1,  # each epoch is one early-stopping window of steps
    "use_distributed_sampler": False,  # each rank draws its own samples (seeded by rank)
    "deterministic": True,
    "log_every_n_steps": 50,
}


class ClapTrainCLI(LightningCLI):
    """LightningCLI with the method's early stopping, periodic checkpoints and adapter export."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--out", default="adapter", help="folder for the trained adapter and its summary")
        parser.add_argument("--ckpt_path", default=None, help="Lightning checkpoint to resume from")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.monitor": WINDOW_METRIC, "early_stopping.patience": 5,
                             "early_stopping.min_delta": 0.01, "early_stopping.mode": "min",
                             "early_stopping.check_on_train_epoch_end": True, "early_stopping.strict": False})
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.every_n_train_steps": 480, "checkpoint.save_last": True,
                             "checkpoint.save_top_k": 1})
        parser.set_defaults({"model": {"class_path": "clap.training.modules.CLAPModule"},
                             "data": {"class_path": "clap.training.text_data.PromptDataModule"}})
        parser.link_arguments("data.init_args.window", "model.init_args.window")


HINT = "(see `clap train --help`)"
NOISE = ("Does not validate against any", "Subtypes:", "Errors:", "Expected a <class 'NoneType'>", "Given value",
         "Problem with given class_path")


def parse_error_line(message: str) -> str:
    """jsonargparse's nested parse error as one line: the option's dotted key and what is wrong with it."""
    keys, details = [], []
    for line in message.splitlines():
        text = line.strip().lstrip("-").strip()
        key = re.match(r'Parser key "([^"]+)":\s*(.*)', text)
        if key:
            keys.append(key.group(1))
            text = key.group(2)
        if text and not text.startswith(NOISE):
            details.append(text)
    detail = "; ".join(details) or "invalid arguments"
    return f"--{'.'.join(keys)}: {detail}" if keys else detail


def _user_error(error: BaseException) -> ClapError | None:
    """The ClapError an option check raised, however jsonargparse wrapped it, or None."""
    while error is not None:
        if isinstance(error, ClapError):
            return error
        error = error.__cause__ or error.__context__
    return None


def build_cli(args: Sequence[str] | None) -> ClapTrainCLI:
    """Parse and instantiate; a bad option or config becomes one ClapError line."""
    try:
        cli = ClapTrainCLI(AdapterModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                           trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0, run=False,
                           parser_kwargs={"exit_on_error": False, "prog": "clap train"},
                           args=list(args) if args is not None else None, save_config_callback=None)
    except ArgumentError as e:
        raise ClapError(f"{parse_error_line(str(e))} {HINT}") from None
    except (ValueError, TypeError, MisconfigurationException) as e:
        cause = _user_error(e)
        if cause is None and not isinstance(e, MisconfigurationException):
            raise
        raise ClapError(f"{str(cause or e).strip().splitlines()[0]} {HINT}") from None
    PATH.check("--out", cli.config["out"])
    ckpt = cli.config["ckpt_path"]
    if ckpt is not None and not Path(ckpt).is_file():
        raise ClapError(f"--ckpt_path {ckpt!r}: no such checkpoint file; give a .ckpt of the run's "
                        "checkpoints/ folder")
    return cli


def main(args: Sequence[str] | None = None) -> int:
    """Parse, train, and export the adapter."""
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")  # lightning vs torch 2.14
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # the seed is in the summary
    cli = build_cli(args)
    resolved = cli.parser.dump(cli.config, skip_none=False)
    cli.trainer.callbacks.append(AdapterExport(cli.config["out"], resolved, cli.config["seed_everything"]))
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
    except SystemExit:  # Lightning's answer to Ctrl-C, after its callbacks' on_exception
        if not cli.trainer.interrupted:
            raise
        checkpoint = interrupted_checkpoint(cli.trainer)
        raise KeyboardInterrupt(f"stopped at step {cli.trainer.global_step}, no adapter exported; resume with "
                                f"the same command and --ckpt_path {checkpoint}") from None
    return 0
