"""`clap train`: LightningCLI over the adapter modules and data modules, with YAML configs.

    clap train --config experiments/configs/world_clap.yaml [--out DIR] [--ckpt_path last.ckpt]
    clap train --print_config                      # the full default config (CLAP text route)
    clap train --model ImAugModule --data ImageDataModule --data.root IMAGES   # Im.Aug image route
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from clap.errors import ClapError
from clap.fileio import folder_lock, refuse_existing_adapter, writable_folder
from clap.options import PATH
from clap.adapter.disentangler import SUMMARY_NAME
from clap.training.fit import CHECKPOINT, EARLY_STOPPING, TRAINER_DEFAULTS, fit
from clap.training.image_data import ImageDataModule  # noqa: F401  (registers the class for --data)
from clap.training.modules import WINDOW_METRIC, AdapterModule, CLAPModule, CLIPNModule, ImAugModule  # noqa: F401
from clap.training.text_data import PromptDataModule  # noqa: F401
from clap.training.caption_data import CaptionDataModule  # noqa: F401
from clap.training.segmentation import SceneDataModule, SegmentationModule  # noqa: F401

class ClapTrainCLI(LightningCLI):
    """LightningCLI with the method's early stopping, periodic checkpoints and adapter export."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--out", default="adapter", help="folder for the trained adapter and its summary")
        parser.add_argument("--overwrite", action="store_true", help="replace an adapter already in --out")
        parser.add_argument("--ckpt_path", default=None, help="Lightning checkpoint to resume from")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar "
                            "(--trainer.enable_progress_bar false)")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({f"early_stopping.{k}": v for k, v in EARLY_STOPPING.items()})
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({f"checkpoint.{k}": v for k, v in CHECKPOINT.items()})
        parser.set_defaults({"model": {"class_path": "clap.training.modules.CLAPModule"},
                             "data": {"class_path": "clap.training.text_data.PromptDataModule"}})
        parser.link_arguments("data.init_args.window", "model.init_args.window")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, then check what Lightning would only trip over later (the seed's bounds), and apply
        --no-progress."""
        super().parse_arguments(parser, args)
        seed = self.config.get("seed_everything")
        if not isinstance(seed, bool) and seed is not None and not (isinstance(seed, int) and 0 <= seed <= MAX_SEED):
            raise ClapError(f"--seed_everything {seed!r}: expected an integer in [0, {MAX_SEED}] {HINT}")
        if self.config.get("no_progress"):
            self.config["trainer"]["enable_progress_bar"] = False


HINT = "(see `clap train --help`)"
MAX_STEPS = 10**9
MAX_SEED = 2**32 - 1  # numpy's seeds, which Lightning seeds too
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
    check_config_files(list(sys.argv[1:] if args is None else args))
    try:
        cli = ClapTrainCLI(AdapterModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                           trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0, run=False,
                           parser_kwargs={"exit_on_error": False, "prog": "clap train"},
                           args=list(args) if args is not None else None, save_config_callback=None)
    except ArgumentError as e:
        raise ClapError(f"{parse_error_line(str(e))} {HINT}") from None
    except UnicodeDecodeError as e:
        raise ClapError(f"a --config file is not UTF-8 YAML text ({e.reason} at byte {e.start}) {HINT}") from None
    except (ValueError, TypeError, MisconfigurationException) as e:
        cause = _user_error(e)
        if cause is None and not isinstance(e, MisconfigurationException):
            raise
        raise ClapError(f"{str(cause or e).strip().splitlines()[0]} {HINT}") from None
    PATH.check("--out", cli.config["out"])
    steps = cli.config["trainer"]["max_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ClapError(f"--trainer.max_steps must be an integer in [1, {MAX_STEPS}] (a run ends after that many "
                        f"steps at most), got {steps!r} {HINT}")
    ckpt = cli.config["ckpt_path"]
    if ckpt is not None:
        check_checkpoint(ckpt, cli.model)
    return cli


def check_config_files(args: list[str]) -> None:
    """A --config file that holds no settings (empty, or comments only) is one line, not a parser's puzzle."""
    for path in map(Path, _config_paths(args)):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # the parser's own message says what is wrong with it
        if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
            raise ClapError(f"--config {path} holds no settings (it is empty); give a YAML mapping, e.g. "
                            f"experiments/configs/world_clap.yaml {HINT}")


def _config_paths(args: list[str]) -> Iterator[str]:
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            yield arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(args):
            yield args[i + 1]


def check_checkpoint(path: str, model: AdapterModule) -> None:
    """A checkpoint to resume must be a Lightning checkpoint (read as tensors only) of this route's module."""
    from clap.adapter.reference import read_torch_file

    where = "give a .ckpt of the run's checkpoints/ folder"
    if not Path(path).is_file():
        raise ClapError(f"--ckpt_path {path!r}: no such checkpoint file; {where}")
    try:
        state = read_torch_file(path)
    except ClapError as e:
        raise ClapError(f"--ckpt_path: not a Lightning checkpoint of clap train: {e}; {where}") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise ClapError(f"--ckpt_path {path}: holds no Lightning state_dict; {where}")
    saved = (state.get("hyper_parameters") or {}).get("_class_path")
    current = f"{type(model).__module__}.{type(model).__qualname__}"
    if isinstance(saved, str) and saved != current:
        raise ClapError(f"--ckpt_path {path} was saved by {saved.rsplit('.', 1)[-1]}, not {type(model).__name__}; "
                        f"resume it with --model {saved.rsplit('.', 1)[-1]} (and its --data)")
    changed = _changed_settings(state.get("hyper_parameters") or {}, dict(model.hparams))
    if changed:
        raise ClapError(f"--ckpt_path {path} was trained with other model settings ({'; '.join(changed[:3])}); "
                        "resume it with the settings it was trained with")


def _changed_settings(saved: dict, current: dict) -> list[str]:
    """The module settings a checkpoint was saved with that this run sets otherwise ("name: saved -> now"); a
    setting this run leaves to the data (None now, e.g. in_dim from the backbone) is not compared."""
    return [f"--model.{k} {saved[k]!r} -> {current[k]!r}" for k in sorted(set(saved) & set(current))
            if not k.startswith("_") and current[k] is not None and saved[k] != current[k]]


def main(args: Sequence[str] | None = None) -> int:
    """Parse, train, and export the adapter."""
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    warnings.filterwarnings("ignore", message=".*`tensorboardX` has been removed")  # CSV logs are what we want
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")  # lightning vs torch 2.14
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # the seed is in the summary
    cli = build_cli(args)
    out = cli.config["out"]
    first_rank = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    if first_rank:  # other DDP ranks start after it has checked and locked --out
        writable_folder(out)
        refuse_existing_adapter(out, cli.config["overwrite"])
    resolved = cli.parser.dump(cli.config, skip_none=False)
    with folder_lock(out, "an adapter") if first_rank else contextlib.nullcontext():
        fit(cli.model, cli.datamodule, out, cli.trainer, seed=cli.config["seed_everything"],
            ckpt_path=cli.config["ckpt_path"], config_text=resolved)
    if cli.trainer.is_global_zero:
        print(f"adapter: {out} ({cli.trainer.global_step} steps; summary in {Path(out) / SUMMARY_NAME})")
    return 0
