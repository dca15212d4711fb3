"""The paper's claims side by side with what a report measured: reproduces, does not, or cannot be told.

A claim is read off the report's statistics (a difference and its 95% two-level bootstrap interval
over training seeds and images) from the interval alone: it reproduces when the whole interval lies on
the claimed side of 0, does not when it lies on the other side, and cannot be told when it contains 0
(the point estimate's sign decides nothing). The t-SNE claim has no per-image statistic;
it is read off the class variance share of each adapter seed against CLIP's.
"""

from __future__ import annotations

from typing import Iterator

from clap.errors import ClapError
from clap.evaluation.report import signed_points
from clap.evaluation.stats import direction

PAPER_EPS = "8/255"

# (claim, task, metric, claimed sign): differences CLAP - CLIP unless the task names a pair.
CLAIMS = (
    ("prompt spread R shrinks (indicative: R's interval under-covers when forms are close)", "zeroshot", "R", -1),
    ("prompt spread shrinks (gap², noise-corrected: this row decides)", "zeroshot", "gap2", -1),
    ("prompt spread delta shrinks", "zeroshot", "delta", -1),
    ("noise-prompt drop Delta(NC) shrinks", "zeroshot", "Delta_NC", -1),
    ("zero-shot ZS(C) improves", "zeroshot", "C", 1),
    ("zero-shot ZS(PC) improves", "zeroshot", "PC", 1),
    ("zero-shot ZS(NC) improves", "zeroshot", "NC", 1),
    ("1-shot linear probe improves", "fewshot", "1-shot", 1),
    ("FGSM gain, zero-shot", "adversarial", f"zero-shot C/FGSM@{PAPER_EPS}", 1),
    ("PGD-20 gain, zero-shot", "adversarial", f"zero-shot C/PGD-20@{PAPER_EPS}", 1),
    ("CW-20 gain, zero-shot", "adversarial", f"zero-shot C/CW-20@{PAPER_EPS}", 1),
    ("FGSM gain, 1-shot", "adversarial", f"1-shot linear/FGSM@{PAPER_EPS}", 1),
    ("PGD-20 gain, 1-shot", "adversarial", f"1-shot linear/PGD-20@{PAPER_EPS}", 1),
    ("CW-20 gain, 1-shot", "adversarial", f"1-shot linear/CW-20@{PAPER_EPS}", 1),
)
BEATS = (("zeroshot", "C"), ("fewshot", "1-shot"), ("adversarial", f"zero-shot C/FGSM@{PAPER_EPS}"))


def verdict(difference: dict, sign: int) -> str:
    """From the interval alone: on the claimed side of 0, on the other side, or containing 0."""
    side = direction(difference["low"], difference["high"])
    if side not in ("higher", "lower"):
        return "cannot be told (interval contains 0)"
    return "reproduces" if (side == "higher") == (sign > 0) else "does not reproduce"


def _cell(metric: str, d: dict) -> str:
    return " ".join(signed_points(metric, d))


def claim_rows(report: dict, model: str = "CLAP", other: str = "Im.Aug") -> Iterator[list[str]]:
    """One row per claim: claim, what was compared, measured difference (points) [95% interval], verdict."""
    stats = report.get("statistics", {})
    differences = stats.get("differences", {})
    for claim, task, metric, sign in CLAIMS:
        d = differences.get(task, {}).get(model, {}).get(metric)
        if d is not None:
            yield [claim, f"{model} - CLIP, {metric}", _cell(metric, d), verdict(d, sign)]
    pair = stats.get("pairs", {}).get(f"{model} - {other}", {})
    for task, metric in BEATS:
        d = pair.get(task, {}).get(metric)
        if d is not None:
            yield [f"{model} beats {other}", f"{model} - {other}, {task} {metric}", _cell(metric, d), verdict(d, 1)]
    tsne = _class_separation(report, model)
    if tsne:
        yield tsne


def _class_separation(report: dict, model: str) -> list[str] | None:
    """t-SNE separates classes better: each seed's class variance share against CLIP's."""
    probe = report.get("results", {}).get("probe", {})
    if "CLIP" not in probe:
        return None
    base = probe["CLIP"]["class_name"]["variance_share"]
    seeds = [v["class_name"]["variance_share"] for k, v in probe.items() if k == model or k.startswith(f"{model}#")]
    if not seeds:
        return None
    above = sum(s > base for s in seeds)
    measured = f"{', '.join(f'{s:.3f}' for s in seeds)} vs {base:.3f}"
    if above == len(seeds):
        outcome = f"reproduces ({above}/{len(seeds)} seeds)"
    elif above == 0:
        outcome = f"does not reproduce (0/{len(seeds)} seeds)"
    else:
        outcome = f"cannot be told ({above}/{len(seeds)} seeds)"
    return ["t-SNE separates classes better", f"class variance share of {model}'s image features vs CLIP",
            measured, outcome]


def claims_table(report: dict, model: str = "CLAP", other: str = "Im.Aug") -> str:
    """The claims as a Markdown table (a header alone when the report holds none of their statistics)."""
    try:
        rows = list(claim_rows(report, model, other))
    except (KeyError, TypeError, AttributeError) as e:
        raise ClapError(f"the report's statistics are malformed ({type(e).__name__}: {e}); rerun the evaluation"
                        ) from None
    lines = ["| paper's claim | measured as | difference, points [95% interval] | in this run |",
             "| --- | --- | --- | --- |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
