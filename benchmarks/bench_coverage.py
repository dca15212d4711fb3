"""Coverage of the two-level bootstrap: how often the 95% intervals hold the true difference.

    python -m benchmarks.bench_coverage [--datasets 400] [--n-boot 1000] [--out FILE]

Writes FILE (default a scratch path; pass --out benchmarks/results/coverage.json to replace the committed one).

Simulated zero-shot results with known truth: domains of unequal sizes, per-domain accuracies of the
C, PC and CP prompt forms for a baseline, and an adapter trained with 3 seeds whose accuracy moves by a
seed effect (normal, known spread) around a known gain per form. Each image is right or wrong by its own
uniform draw per form, shared by every model (so the models are paired as on real images). Truth is
the population value: the gain in mean-over-domains accuracy, and the changes in mean-over-domains R
and gap2 (the mean squared gap between forms), averaged over seeds. Two scenarios tie one model's
forms (its R is 0), where a range of noisy accuracies is most biased. One lets the seeds disagree on
individual images (each seed redraws a share of the images' outcomes, its rates unchanged), as retrained
adapters do. Each simulated dataset goes
through `clap.evaluation.statistics.stats.differences` exactly as a report does; the share of intervals that
cover the truth is printed and saved.

R is a range of noisy accuracies: when forms are within noise of each other its estimate reads above
the population range (its noise floor), and more so for the model whose forms are closer, so R's
differences are pulled toward the model with the closer forms and their intervals under-cover the
population difference; no bootstrap of the range repairs that (percentile, basic and bias-corrected
intervals were tried). gap2 is estimated without bias, and its intervals are the ones to read.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clap.evaluation.statistics.resample import Resamples
from clap.evaluation.statistics.stats import TaskMeasure, differences
from clap.evaluation.protocols.zeroshot import PROMPT_FORMS, zero_shot_statistic

OUT = Path("/tmp/clap_bench_coverage.json")  # scratch: the committed results/coverage.json is replaced on purpose
SIZES = (120, 200, 80, 300)  # images per domain: unequal, as on PACS
BASE = np.array([[0.60, 0.70, 0.66], [0.50, 0.58, 0.55], [0.72, 0.80, 0.74], [0.45, 0.55, 0.52]])  # [domain, form]
GAIN = np.array([0.06, 0.02, 0.03])  # per form: narrows the spread, as CLAP claims
TIED = BASE.max(axis=1, keepdims=True) - BASE  # a gain that makes every form of a domain equal
SEEDS = 3


@dataclass(frozen=True)
class Scenario:
    """Per-domain, per-form rates of the baseline, the adapter's gain over them and its seed spread."""

    base: np.ndarray
    gain: np.ndarray
    seed_sd: float
    own_draws: float = 0.0  # share of images whose outcome each adapter seed draws afresh (disagreeing seeds)


SCENARIOS = {
    "no seed spread": Scenario(BASE, GAIN, 0.0),
    "seed spread 0.5 points (the demo's CLAP seeds)": Scenario(BASE, GAIN, 0.005),
    "seed spread 1.5 points": Scenario(BASE, GAIN, 0.015),
    "seed spread 3 points": Scenario(BASE, GAIN, 0.03),
    "the adapter's forms tied (R 0), seed spread 0.5 points": Scenario(BASE, TIED, 0.005),
    "the baseline's forms tied (R 0), seed spread 0.5 points": Scenario(BASE[:, :1].repeat(3, axis=1), GAIN, 0.005),
    "seeds disagree on 30% of the images, seed spread 0.5 points": Scenario(BASE, GAIN, 0.005, own_draws=0.3),
}


def truth(scenario: Scenario) -> dict[str, float]:
    """Population differences (seed effects average out: they shift every form alike, leaving R alone)."""
    adapter = np.broadcast_to(scenario.base + scenario.gain, scenario.base.shape)
    ranges = lambda rates: float(np.mean(rates.max(axis=1) - rates.min(axis=1)))  # noqa: E731
    gaps = lambda rates: float(np.mean([(rates[:, i] - rates[:, j]) ** 2 for i, j in ((0, 1), (0, 2), (1, 2))]))  # noqa: E731
    return {"C": float(np.mean(adapter[:, 0] - scenario.base[:, 0])),
            "R": ranges(adapter) - ranges(scenario.base), "gap2": gaps(adapter) - gaps(scenario.base)}


def simulate(rng: np.random.Generator, scenario: Scenario) -> dict[str, dict]:
    """{model: {domain: {form: hits}}} for CLIP and the adapter's seeds."""
    shared = [rng.random((n, len(PROMPT_FORMS))) for n in SIZES]  # each image's draw per form, shared
    adapter = scenario.base + scenario.gain
    models = {"CLIP": (scenario.base, shared)}
    for k in range(SEEDS):
        own = [np.where(rng.random((n, 1)) < scenario.own_draws, rng.random((n, len(PROMPT_FORMS))), draws)
               for n, draws in zip(SIZES, shared)] if scenario.own_draws else shared  # the others: the same stream
        models[f"A#{k + 1}"] = (adapter + rng.normal(0, scenario.seed_sd), own)
    return {name: {f"d{d}": {f: (draws[d][:, j] < rates[d, j]).astype(float) for j, f in enumerate(PROMPT_FORMS)}
                   for d in range(len(SIZES))} for name, (rates, draws) in models.items()}


def coverage(datasets: int, n_boot: int, scenario: Scenario, seed: int = 0) -> dict[str, float]:
    """Share of intervals (C gain, R change, gap2 change) that cover the truth, and their mean widths."""
    rng, target = np.random.default_rng(seed), truth(scenario)
    covered, widths = {k: 0 for k in target}, {k: [] for k in target}
    for t in range(datasets):
        records = simulate(rng, scenario)
        measure = TaskMeasure({name: zero_shot_statistic(r) for name, r in records.items()}, sum(SIZES))
        out = differences("CLIP", {"zeroshot": measure}, Resamples(n_boot, seed=t))["differences"]["zeroshot"]["A"]
        for key, value in target.items():
            covered[key] += out[key]["low"] <= value <= out[key]["high"]
            widths[key].append(out[key]["high"] - out[key]["low"])
    return {**{f"coverage_{k}": covered[k] / datasets for k in target},
            **{f"mean_width_{k}": float(np.mean(w)) for k, w in widths.items()}, "truth": target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON to write")
    args = parser.parse_args()
    start, rows = time.monotonic(), {}
    for name, scenario in SCENARIOS.items():
        rows[name] = {"seed_sd": scenario.seed_sd, **coverage(args.datasets, args.n_boot, scenario)}
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[name].items() if k.startswith("coverage")),
              flush=True)
    doc = {"datasets": args.datasets, "n_boot": args.n_boot, "level": 0.95, "domain_sizes": list(SIZES),
           "seeds": SEEDS, "scenarios": rows, "seconds": round(time.monotonic() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
