"""`clap generate`: attribute prompts -> images through a diffusers pipeline (resumable, multi-process)."""

from __future__ import annotations

import argparse

from clap.cli.prompts import add_class_arguments, class_source
from clap.options import PATH, Device


def add_parser(sub) -> None:
    from clap.data_gen.sd.defaults import DEFAULT_MODEL, SCHEDULERS
    from clap.data_gen.sd.generate import LIMITS

    p = sub.add_parser("generate", help="synthesise class images from attribute prompts with Stable Diffusion",
                       description=__doc__.splitlines()[0] + " Run under `accelerate launch --multi_gpu -m "
                       "clap.cli.main generate ...` (torchrun on CPUs) to split the prompts across processes.")
    add_class_arguments(p)
    p.add_argument("--out", required=True, type=PATH, help="output folder: <class>/<prompt>/<n>.png + manifest.jsonl")
    p.add_argument("--model", default=DEFAULT_MODEL, type=LIMITS["model"],
                   help="diffusers pipeline: hub id or local folder")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="dpm-solver++", help="diffusion sampler")
    p.add_argument("--steps", type=LIMITS["steps"], default=25, help="denoising steps per image")
    p.add_argument("--guidance", type=LIMITS["guidance"], default=7.5, help="classifier-free guidance scale")
    p.add_argument("--size", type=LIMITS["height"], default=512,
                   help="image height and width in pixels (a multiple of 8)")
    p.add_argument("--negative-prompt", type=LIMITS["negative_prompt"], default=None,
                   help="what the images should not show")
    p.add_argument("--images-per-prompt", type=LIMITS["images_per_prompt"], default=1,
                   help="images generated from each prompt")
    p.add_argument("--prompts-per-class", type=LIMITS["prompts_per_class"], default=None,
                   help="seeded subset of the 480 prompts per class")
    p.add_argument("--batch-size", type=LIMITS["batch_size"], default=4, help="images per pipeline call")
    p.add_argument("--suffix", type=LIMITS["suffix"], default=None,
                   help="appended to every prompt (default: ' in a random environment'; '' for none)")
    p.add_argument("--seed", type=LIMITS["seed"], default=0,
                   help="seed of every image's noise (same seed, same images)")
    p.add_argument("--device", default="auto", type=Device(),
                   help="auto (default: CUDA when this machine has it), cpu or cuda (under accelerate launch: each "
                        "rank's device)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--attention-slicing", action="store_true", help="lower memory use (CUDA)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run, on_interrupt="the images written so far are kept; rerun the same command to resume")


def run(args: argparse.Namespace) -> int:
    from clap.prompts.classes import load_classes
    from clap.data_gen.sd.generate import config_from_args, generate

    config = config_from_args(model=args.model, scheduler=args.scheduler, steps=args.steps, guidance=args.guidance,
                              height=args.size, width=args.size, negative_prompt=args.negative_prompt,
                              images_per_prompt=args.images_per_prompt, prompts_per_class=args.prompts_per_class,
                              batch_size=args.batch_size, suffix=args.suffix, seed=args.seed, fp16=args.fp16,
                              attention_slicing=args.attention_slicing)
    manifest = generate(load_classes(class_source(args)), args.out, config, device=args.device,
                        progress=not args.no_progress)
    if manifest is not None:
        rows = sum(1 for _ in manifest.open())
        print(f"{rows} images listed in {manifest}")
    return 0
