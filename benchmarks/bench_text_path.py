"""Fast text path vs open_clip's full 77-token forward, on a ViT-B-16 text tower (random weights).

    python benchmarks/bench_text_path.py [--threads 2]

Target from the foundation issue: speed-up >= 4x on 8 typical template prompts.
"""

from __future__ import annotations

import argparse
import logging

import torch

from benchmarks.common import best_of, save_result
from clap.backbones.loading import load_backbone
from clap.prompts.templates import class_prompts

TARGET = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    backbone = load_backbone("ViT-B-16", "random")
    prompts = [p.text() for p in class_prompts("dog")[::60]]
    tokens = backbone.tokenize(prompts)
    with torch.no_grad():
        fast = best_of(lambda: backbone.encode_text(tokens), args.repeats)
        full = best_of(lambda: backbone.encode_text_full(tokens), args.repeats)
        diff = float((backbone.encode_text(tokens) - backbone.encode_text_full(tokens)).abs().max())
    save_result("text_path", {
        "model": "open_clip ViT-B-16 (random weights)", "prompts": prompts, "batch": len(prompts),
        "longest_tokens": int(tokens.argmax(-1).max()) + 1, "context": tokens.shape[1],
        "full_s_per_batch": full, "fast_s_per_batch": fast, "speedup": full / fast,
        "max_abs_diff": diff, "target_speedup": TARGET, "meets_target": full / fast >= TARGET,
    })


if __name__ == "__main__":
    main()
