"""The GPU benchmark: training step, feature encoding, attacks and synthesis on one CUDA device.

    python -m benchmarks.bench_gpu [--model ViT-B-16] [--steps 200]

- training: clap's pipeline (frozen features, prefix-shared noisy views) against the authors'-style loop
  (every prompt re-encoded through full 77-token forwards at every step), both on the GPU, same objective
  (`benchmarks.bench_training`); the ratio of their time per step.
- encoding: images/s of the image tower, fp32 against bf16 and fp16 autocast (`--precision`).
- attacks: images/s of PGD-20 (fp32, as the evaluation runs it) through the pixel-space wrapper.
- synthesis: images/s of `clap generate`'s pipeline code on a random SD pipeline of the standard layout
  (`clap.data_gen.sd.tiny`; no weights can be downloaded offline), fp32 and fp16.
Writes benchmarks/results/gpu.json. Without a CUDA device it says so and measures nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.common import save_result
from clap.backbones.loading import load_backbone


def synchronised(fn) -> float:
    """Seconds of `fn()` with the device's queue drained before and after."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def encoding(model: str, pretrained: str, batch: int, repeats: int) -> dict:
    """Images/s of the image tower per precision."""
    out = {}
    for precision in ("fp32", "bf16", "fp16"):
        torch.manual_seed(0)
        backbone = load_backbone(model, pretrained, device="cuda", precision=precision)
        pixels = torch.rand(batch, 3, backbone.image_size, backbone.image_size, device="cuda")
        run = partial(backbone.encode_image, pixels)
        with torch.no_grad():
            run()  # warm-up
            seconds = min(synchronised(run) for _ in range(repeats))
        out[precision] = {"images_per_s": batch / seconds, "batch": batch}
        torch.cuda.empty_cache()
    return out


def attacks(model: str, pretrained: str, batch: int) -> dict:
    """Images/s of PGD-20 at 8/255 against zero-shot CLIP (fp32), pixels in [0, 1]."""
    from clap.evaluation.protocols.adversarial import AttackTarget, pgd, zero_shot_head
    from clap.model import CLAPModel

    backbone = load_backbone(model, pretrained, device="cuda")
    clip = CLAPModel(backbone)
    weights = clip.zero_shot_classifier([f"class {k}" for k in range(10)], ["a photo of a {}"])
    target = AttackTarget(clip, zero_shot_head(weights.to("cuda")))
    pixels = torch.rand(batch, 3, backbone.image_size, backbone.image_size, device="cuda")
    labels = torch.randint(0, 10, (batch,), device="cuda")
    pgd(target, pixels[:2], labels[:2], steps=1)  # warm-up
    seconds = synchronised(lambda: pgd(target, pixels, labels, 8 / 255, steps=20,
                                       generator=torch.Generator().manual_seed(0)))
    return {"attack": "PGD-20 at 8/255, fp32", "images_per_s": batch / seconds, "batch": batch}


def training(model: str, pretrained: str, steps: int, ref_steps: int, batch: int) -> dict:
    """Time per step of clap's pipeline and of the reference loop, both on the GPU."""
    from benchmarks.bench_training import clap_losses, reference_losses
    from clap.prompts.classes import preset_classes

    torch.manual_seed(0)
    backbone = load_backbone(model, pretrained, device="cuda")
    _, ref_seconds = reference_losses(backbone, preset_classes("pacs"), ref_steps, batch, 0, 4)
    _, clap_seconds = clap_losses(model, pretrained, steps, batch, 0, 4, backbone, device="cuda")
    ref_step, clap_step = ref_seconds / ref_steps, clap_seconds / steps
    return {"reference_s_per_step": ref_step, "clap_s_per_step_including_setup": clap_step,
            "clap_steps": steps, "reference_steps": ref_steps, "speedup": ref_step / clap_step}


def synthesis(images: int) -> dict:
    """Images/s of `generate` on a random SD pipeline of the standard layout, fp32 and fp16."""
    from clap.data_gen.sd.generate import config_from_args, generate
    from clap.data_gen.sd.tiny import save_tiny_pipeline

    out = {}
    with tempfile.TemporaryDirectory() as folder:
        pipeline = save_tiny_pipeline(Path(folder) / "sd", width=32)
        for fp16 in (False, True):
            config = config_from_args(model=str(pipeline), steps=20, height=64, width=64, batch_size=8,
                                      prompts_per_class=images // 2, seed=0, fp16=fp16)
            target = Path(folder) / f"images_{fp16}"
            start = time.perf_counter()
            generate(["star", "ring"], target, config, device="cuda", progress=False)
            out["fp16" if fp16 else "fp32"] = {"images_per_s": images / (time.perf_counter() - start),
                                               "steps": 20, "size": 64, "pipeline": "random, 32/64 channels"}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16", help="open_clip name ('embedded': the tiny CLIP)")
    parser.add_argument("--pretrained", default="random")
    parser.add_argument("--steps", type=int, default=400, help="clap training steps timed")
    parser.add_argument("--ref-steps", type=int, default=100, help="reference-loop steps timed")
    parser.add_argument("--batch", type=int, default=256, help="images per encoding batch")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured (run it on a machine with a GPU)")
        return 0
    logging.disable(logging.WARNING)
    model, pretrained = (None, None) if args.model == "embedded" else (args.model, args.pretrained)
    result = {"device": torch.cuda.get_device_name(0), "backbone": f"{args.model} ({args.pretrained} weights)",
              "encoding": encoding(model, pretrained, args.batch, 5),
              "attacks": attacks(model, pretrained, 64),
              "training": training(model, pretrained, args.steps, args.ref_steps, 8),
              "synthesis": synthesis(32)}
    result["encoding"]["bf16_over_fp32"] = (result["encoding"]["bf16"]["images_per_s"]
                                            / result["encoding"]["fp32"]["images_per_s"])
    save_result("gpu", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
