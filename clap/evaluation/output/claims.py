"""The paper's claims side by side with what a report measured: reproduces, does not, or cannot be told.

A claim is read off the report's statistics (a difference and its 95% two-level bootstrap interval
over training seeds and images) from the interval alone: it reproduces when the whole interval lies on
the claimed side of 0, does not when it lies on the other side, and cannot be told when it contains 0
(the point estimate's sign decides nothing). Judged at 95% each, a family of claims shows false verdicts by
chance: a second column applies Holm's step-down correction over the report's testable claims (bootstrap
p-values, `clap.evaluation.statistics.stats.bootstrap_p`) and says which verdicts survive it. A comparison with a
degenerate side is "not testable", never a verdict: a model that chose alpha 0 on every seed is the frozen model,
and two accuracies both at 0% (or 100%) tell nothing. The t-SNE claim has no per-image statistic;
it is read off the class variance share of each adapter seed against CLIP's.
"""

from __future__ import annotations

from typing import Iterator

from clap.errors import ClapError
from clap.evaluation.output.report import signed_points
from clap.evaluation.statistics.stats import direction, holm

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


FAMILY_LEVEL = 0.05
ACCURACY_TASKS = ("fewshot", "adversarial")  # and the zero-shot accuracies below: 0 and 1 are floor and ceiling
ZS_ACCURACIES = ("C", "CP", "PC", "NC")


def verdict(difference: dict, sign: int) -> str:
    """From the interval alone: on the claimed side of 0, on the other side, or containing 0."""
    side = direction(difference["low"], difference["high"])
    if side not in ("higher", "lower"):
        return "cannot be told (interval contains 0)"
    return "reproduces" if (side == "higher") == (sign > 0) else "does not reproduce"


def family_verdict(difference: dict, sign: int, adjusted_p: float) -> str:
    """The verdict after Holm's correction over the report's claims: the 95% verdict where the adjusted p-value is
    below 0.05, else "cannot be told"; never stronger than the 95% verdict."""
    alone = verdict(difference, sign)
    if alone.startswith("cannot") or adjusted_p < FAMILY_LEVEL:
        return alone
    return f"cannot be told after Holm (adjusted p {adjusted_p:.3f})"


def _cell(metric: str, d: dict) -> str:
    return " ".join(signed_points(metric, d))


def frozen_models(report: dict) -> set[str]:
    """Models (and seed groups) that are the frozen backbone: no adapter, or every seed at alpha 0."""
    members: dict[str, list[float]] = {}
    for name, info in report.get("models", {}).items():
        alpha = info.get("alpha")
        if alpha is not None:
            members.setdefault(name.split("#")[0], []).append(alpha)
    return {name for name, alphas in members.items() if all(a == 0 for a in alphas)}


def untestable(report: dict, task: str, metric: str, d: dict, sides: tuple[str, str]) -> str | None:
    """Why a comparison cannot test its claim: a side that is the frozen model (alpha 0 on every seed), or both
    sides at an accuracy's floor (0%) or ceiling (100%)."""
    frozen = [side for side in sides if side != "CLIP" and side in frozen_models(report)]
    if frozen:
        return f"not testable: {frozen[0]} chose alpha 0 on every seed (it is the frozen model)"
    accuracy = task in ACCURACY_TASKS or (task == "zeroshot" and metric in ZS_ACCURACIES)
    values = (d.get("value"), d.get("base_value"))
    if accuracy and None not in values:
        for bound, word in ((0.0, "floor"), (1.0, "ceiling")):
            if all(abs(v - bound) < 1e-12 for v in values):
                return f"at {word} ({100 * bound:.0f}% and {100 * bound:.0f}%): not testable"
    return None


def _compared(report: dict, model: str, other: str) -> Iterator[tuple[str, str, str, dict, int, str | None]]:
    """(claim, what was compared, metric, difference, claimed sign, why not testable) for each claim the report
    holds a statistic for."""
    stats = report.get("statistics", {})
    differences = stats.get("differences", {})
    for claim, task, metric, sign in CLAIMS:
        d = differences.get(task, {}).get(model, {}).get(metric)
        if d is not None:
            yield (claim, f"{model} - CLIP, {metric}", metric, d, sign,
                   untestable(report, task, metric, d, (model, "CLIP")))
    pair = stats.get("pairs", {}).get(f"{model} - {other}", {})
    for task, metric in BEATS:
        d = pair.get(task, {}).get(metric)
        if d is not None:
            yield (f"{model} beats {other}", f"{model} - {other}, {task} {metric}", metric, d, 1,
                   untestable(report, task, metric, d, (model, other)))


def claim_rows(report: dict, model: str = "CLAP", other: str = "Im.Aug") -> Iterator[list[str]]:
    """One row per claim: claim, what was compared, measured difference (points) [95% interval], the verdict at
    95% and the family-wise verdict (Holm over the report's testable claims that carry a p-value)."""
    compared = list(_compared(report, model, other))
    family = [i for i, c in enumerate(compared) if c[5] is None and c[3].get("p") is not None]
    adjusted = dict(zip(family, holm([compared[i][3]["p"] for i in family])))
    for i, (claim, what, metric, d, sign, reason) in enumerate(compared):
        if reason is not None:
            yield [claim, what, _cell(metric, d), reason, reason]
        else:
            corrected = family_verdict(d, sign, adjusted[i]) if i in adjusted else "-"
            yield [claim, what, _cell(metric, d), verdict(d, sign), corrected]
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
            measured, outcome, "- (no interval)"]


def claims_table(report: dict, model: str = "CLAP", other: str = "Im.Aug") -> str:
    """The claims as a Markdown table (a header alone when the report holds none of their statistics)."""
    try:
        rows = list(claim_rows(report, model, other))
    except (KeyError, TypeError, AttributeError) as e:
        raise ClapError(f"the report's statistics are malformed ({type(e).__name__}: {e}); rerun the evaluation"
                        ) from None
    lines = ["| paper's claim | measured as | difference, points [95% interval] | in this run (95% each) | "
             "family-wise (Holm) |", "| --- | --- | --- | --- | --- |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
