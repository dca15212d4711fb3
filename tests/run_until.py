"""Run the clap CLI and freeze it at a chosen point, so that a test can interrupt it exactly there.

    python tests/run_until.py MARKER step N  clap-args...    after training step N (its checkpoint written)
    python tests/run_until.py MARKER image N clap-args...    after the N-th generated image is written
    python tests/run_until.py MARKER render N clap-args...   after the N-th world image is written
    python tests/run_until.py MARKER attack 0 clap-args...   when `clap eval` starts its attacks
    python tests/run_until.py MARKER run N clap-args...      after the N-th of `clap demo`'s training runs ends
    python tests/run_until.py MARKER setup 0 clap-args...    while `clap train` sets up its data (step 0)

On reaching the point it writes MARKER and sleeps until a signal ends it; waiting for MARKER replaces
sleeps and polling for side effects (which raced against fast runs).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def freeze(marker: Path) -> None:
    marker.write_text("reached\n")
    while True:
        time.sleep(1)


def after_step(marker: Path, n: int) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    original = ModelCheckpoint.on_train_batch_end

    def hook(self, trainer, *args, **kwargs):
        original(self, trainer, *args, **kwargs)
        if trainer.global_step >= n:
            freeze(marker)

    ModelCheckpoint.on_train_batch_end = hook


def after_saves(module, marker: Path, n: int) -> None:
    """Freeze after the n-th image `module` writes (through its `save_image_atomic`)."""
    original, written = module.save_image_atomic, []

    def hook(image, path):
        original(image, path)
        written.append(path)
        if len(written) >= n:
            freeze(marker)

    module.save_image_atomic = hook


def after_image(marker: Path, n: int) -> None:
    from clap.data_gen.sd import generate

    after_saves(generate, marker, n)


def after_render(marker: Path, n: int) -> None:
    from clap.data_gen.world import export

    after_saves(export, marker, n)


def at_attack(marker: Path, n: int) -> None:
    from clap.evaluation.protocols import attack_eval

    attack_eval.run_adversarial = lambda *args, **kwargs: freeze(marker)


def after_run(marker: Path, n: int) -> None:
    from clap.training import parallel

    original, ended = parallel._report_run, []

    def hook(*args):
        original(*args)
        ended.append(args)
        if len(ended) >= n:
            freeze(marker)

    parallel._report_run = hook


def at_setup(marker: Path, n: int) -> None:
    from clap.training.steps import FrozenFeatureDataModule

    FrozenFeatureDataModule.setup = lambda self, stage=None: freeze(marker)


if __name__ == "__main__":
    marker, kind, n, *argv = sys.argv[1:]
    {"step": after_step, "image": after_image, "render": after_render, "attack": at_attack,
     "run": after_run, "setup": at_setup}[kind](Path(marker), int(n))
    from clap.cli.main import main

    sys.exit(main(argv))
