"""Prefix-shared text encoding (`Backbone.encode_texts`) vs length-sorted batches on the trimmed path.

Two workloads of CLAP training on PACS: the prompt bank (all 3,360 template prompts, clean) and one
chunk of 4,096 augmented prompts with IGN noise (the default chunk of the PACS config). Both paths
get the same noise draws; the clean features are compared.

    python -m benchmarks.bench_prefix_sharing [--threads 2] [--model ViT-B-16]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from benchmarks.common import save_result
from clap.backbones.loading import load_backbone
from clap.batching import encode_in_batches
from clap.prompts.augment import AugmentationConfig, PromptRegistry
from clap.prompts.classes import preset_classes
from clap.prompts.templates import class_prompts
from clap.runtime import keep_freed_memory
from clap.training.text_data import draw_samples


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--model", default="ViT-B-16", help="open_clip name, or 'embedded'")
    parser.add_argument("--chunk", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    allocator = keep_freed_memory()
    torch.manual_seed(0)
    backbone = load_backbone(None, None) if args.model == "embedded" else load_backbone(args.model, "random")
    prompts = [class_prompts(c) for c in preset_classes("pacs")]
    bank = [p.text() for ps in prompts for p in ps]
    registry = PromptRegistry(p for ps in prompts for p in ps)
    _, _, chunk = draw_samples(prompts, registry, 0, args.chunk, np.random.default_rng(0), AugmentationConfig())
    backbone.encode_texts(bank[:256])  # warm-up

    def plain(texts: list[str], n_tokens: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)
        return encode_in_batches(lambda b: backbone.encode_text_with_noise(b, n_tokens, 0.02, "random", generator),
                                 texts, 256, len)

    bank_shared, bank_shared_s = timed(lambda: backbone.encode_texts(bank))
    bank_plain, bank_plain_s = timed(lambda: plain(bank, 0))
    _, chunk_shared_s = timed(lambda: backbone.encode_texts(chunk, 4, 0.02, "random", torch.Generator().manual_seed(1)))
    _, chunk_plain_s = timed(lambda: plain(chunk, 4))
    save_result("prefix_sharing", {
        "model": f"open_clip {args.model} (random weights)" if args.model != "embedded" else "embedded tiny CLIP",
        "glibc_thresholds_raised_for_both": allocator,
        "bank": {"texts": len(bank), "plain_s": bank_plain_s, "shared_s": bank_shared_s,
                 "speedup": bank_plain_s / bank_shared_s,
                 "max_abs_diff": float((bank_shared - bank_plain).abs().max())},
        "ign_chunk": {"texts": len(chunk), "plain_s": chunk_plain_s, "shared_s": chunk_shared_s,
                      "speedup": chunk_plain_s / chunk_shared_s},
    })


if __name__ == "__main__":
    main()
