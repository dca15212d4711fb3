"""What the CLIPN route trains, measured on the embedded world: "no" prompts + head (the default) against the
head alone (prompt_tokens 0), and against the default with same-class pairs left out of the "no" term
(`same_meaning: class_name`; the authors mask nothing). Same captions, steps and seed; OOD = the world's
held-out classes.

    python experiments/clipn/ablation.py --out /tmp/clipn_ablation      # prints and writes ablation.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from safetensors.torch import load_file

from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.fileio import write_text_atomic

VARIANTS = {"prompts + head": ("prompts", ["--model.prompt_tokens", "8"]),
            "head only": ("head", ["--model.prompt_tokens", "0"]),
            "prompts + head, same class masked": ("masked", ["--model.prompt_tokens", "8",
                                                             "--data.same_meaning", "class_name"])}


def train(out: Path, name: str, options: list[str], steps: int) -> tuple[Path, float]:
    adapter = out / f"clipn_{name}"
    start = time.monotonic()
    code = main(["train", "--model", "CLIPNModule", "--data", "CaptionDataModule", "--data.root", str(out / "captions"),
                 *options, "--data.batch_size", "64", "--data.window", "100",
                 "--trainer.max_steps", str(steps), "--trainer.logger", "false", "--trainer.enable_progress_bar",
                 "false", "--trainer.enable_model_summary", "false", "--trainer.default_root_dir",
                 str(out / "runs" / name), "--out", str(adapter)])
    if code:
        raise SystemExit(code)
    return adapter, (time.monotonic() - start) / steps


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    out = Path(args.out)
    render_world(out / "captions", "captions", 16, 2027, progress=False)
    render_world(out / "test", "domains", 4, 2028, progress=False)
    rows = {}
    for name, (short, options) in VARIANTS.items():
        adapter, per_step = train(out, short, options, args.steps)
        report = out / f"report_{short}"
        if main(["eval", "ood", "--dataset", str(out / "test"), "--adapter", f"CLIPN={adapter}", "--out", str(report),
                 "--no-progress", "--overwrite"]):
            raise SystemExit(2)
        ood = json.loads((report / "ood.json").read_text())["results"]["ood"]
        weights = sum(t.numel() for t in load_file(str(adapter / "adapter_model.safetensors")).values())
        rows[name] = {"options": " ".join(options), "trainable": weights, "seconds_per_step": per_step,
                      **{rule: ood["CLIPN"]["mean"][rule] for rule in ("CTW", "ATD")},
                      "CLIP MCM": ood["CLIP"]["mean"]["MCM"]}
    write_text_atomic(out / "ablation.json", json.dumps(rows, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name}: {row['trainable']} numbers, {row['seconds_per_step']:.3f} s/step, "
              f"CTW AUROC {100 * row['CTW']['AUROC']:.1f} FPR95 {100 * row['CTW']['FPR95']:.1f}, "
              f"ATD AUROC {100 * row['ATD']['AUROC']:.1f} FPR95 {100 * row['ATD']['FPR95']:.1f}")


if __name__ == "__main__":
    run()
