"""The embedded default: load time of the shipped tiny CLIP, and rendering speed of the world.

    python -m benchmarks.bench_embedded

Targets from the world issue: load in under 2 s (no download), render >= 200 images/s on one core.
"""

from __future__ import annotations

import logging

import torch

from benchmarks.common import best_of, save_result
from clap.backbones.loading import load_backbone
from clap.data_gen.world.render import WorldSpec, render_arrays


def main() -> None:
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    load_s = best_of(load_backbone, repeats=3)
    n = 500
    render_s = best_of(lambda: render_arrays(WorldSpec(), seed=0, n=n), repeats=3)
    save_result("embedded", {
        "load_seconds (after import)": load_s, "load_target_seconds": 2.0, "load_meets_target": load_s < 2.0,
        "render_images_per_s_one_core": n / render_s, "render_target": 200, "render_meets_target": n / render_s >= 200,
    })


if __name__ == "__main__":
    main()
