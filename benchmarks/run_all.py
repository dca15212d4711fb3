"""Run every benchmark in turn (each prints and saves its JSON under benchmarks/results/).

    python benchmarks/run_all.py [--quick]

--quick uses the embedded tiny CLIP and short runs (minutes); the default measures the targets
on an open_clip ViT-B-16 with random weights (tens of minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = ["--model", "embedded"] if args.quick else []
    runs = [
        ["benchmarks.bench_embedded"],
        ["benchmarks.bench_probe_cv"],
        ["benchmarks.bench_text_path"],
        ["benchmarks.bench_prefix_sharing", *quick],
        ["benchmarks.bench_eval_features", *quick],
        ["benchmarks.bench_attacks"],
        ["benchmarks.bench_coverage"],
        ["benchmarks.bench_clipn", *(["--models", "embedded"] if args.quick else [])],
        ["benchmarks.bench_dense"],
        ["benchmarks.bench_training", *quick, *(["--ref-steps", "40", "--fast-steps", "400"] if args.quick else [])],
    ]
    for run in runs:
        print(f"== {' '.join(run)}", flush=True)
        subprocess.run([sys.executable, "-m", *run], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
