"""Choosing the adapter's inference alpha without test labels.

The rule: on a held-out validation set (a render of another seed, or a `--val` folder of real data),
take the alpha of a fixed grid with the best mean zero-shot accuracy over the prompt forms C, PC and
CP; ties go to the smaller alpha (closer to the frozen model). The choice is recorded in the
adapter config (`alpha` and `alpha_selection`), so evaluation on test data only reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from clap.defaults import ALPHA_GRID
from clap.errors import ClapError
from clap.evaluation.protocols.zeroshot import PROMPT_FORMS, SINGLE_FORMS, evaluate_zero_shot

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup

RULE = "best mean zero-shot accuracy over C, PC, CP on the validation set; ties to the smaller alpha"


def zero_shot_by_alpha(model, features: dict, classnames: Sequence[str], grid: Sequence[float]) -> dict:
    """{alpha: mean zero-shot row over domains} of a CLAPModel at each alpha; its own alpha is restored."""
    original, rows = model.alpha, {}
    try:
        for alpha in grid:
            model.alpha = float(alpha)
            rows[float(alpha)] = evaluate_zero_shot(model, features, classnames, forms=SINGLE_FORMS,
                                                   floor=False)[0]["mean"]
    finally:
        model.alpha = original
    return rows


def best_alpha(model, val_features: dict, classnames: Sequence[str], grid: Sequence[float] = ALPHA_GRID) -> dict:
    """{alpha, rule, grid, scores} from validation features only; `model` is a CLAPModel with an adapter."""
    if not grid or any(not np.isfinite(a) or a < 0 for a in grid):
        raise ValueError(f"the alpha grid must be non-empty, finite and non-negative, got {list(grid)}")
    rows = zero_shot_by_alpha(model, val_features, classnames, grid)
    scores = {alpha: float(np.mean([row[f] for f in PROMPT_FORMS])) for alpha, row in rows.items()}
    best = max(scores, key=lambda a: (round(scores[a], 12), -a))
    return {"alpha": best, "rule": RULE, "grid": [float(a) for a in grid],
            "scores": {f"{a:g}": s for a, s in scores.items()}}


def record_selection(adapter_dir: str | Path, selection: dict, val: str, n_images: int) -> None:
    """Write the chosen alpha and how it was chosen into the adapter's config (weights untouched)."""
    from clap.adapter.disentangler import Disentangler

    adapter = Disentangler.from_pretrained(adapter_dir)
    adapter.config.alpha = selection["alpha"]
    adapter.config.alpha_selection = {**selection, "validation": val, "validation_images": n_images}
    adapter.save_pretrained(adapter_dir)


def select_alpha(adapter_dirs: Sequence[str], val_root: str | Path, grid: Sequence[float] = ALPHA_GRID,
                  backbone_options: dict | None = None, cache_dir: str | None = None, device: str = "auto",
                  progress: bool = True, ignore_classes: bool = False, precision: str = "auto") -> dict[str, dict]:
    """Select and record the alpha of each adapter on one validation set; {adapter dir: selection}."""
    from clap.evaluation.inputs.setup import AdapterSpec, build_setup

    specs = [AdapterSpec(f"adapter{k}", str(path)) for k, path in enumerate(adapter_dirs)]
    setup = build_setup(val_root, specs, backbone_options, cache_dir, device, ignore_classes, progress=progress,
                        test=False, precision=precision)  # choosing again on the same validation set is allowed
    if setup.negation:
        names = {s.name: s.path for s in specs}
        raise ClapError(f"{names[next(iter(setup.negation))]} is a CLIPN (negation) adapter: its 'no' head has no "
                        "alpha to choose; select-alpha takes CLAP and Im.Aug adapters")
    n_images = sum(len(f.paths) for f in setup.raw.values())
    chosen = {}
    for spec in specs:
        selection = best_alpha(setup.models[spec.name], setup.raw, setup.dataset.classes, grid)
        record_selection(spec.path, selection, str(val_root), n_images)
        chosen[spec.path] = {**selection, "validation_images": n_images}
    return chosen


def run_alpha(setup: EvalSetup, alphas: Sequence[float]) -> dict:
    """Mean zero-shot accuracy per prompt form against alpha, for each adapted model."""
    sweep = {}
    for name, m in setup.models.items():
        if m.adapter is None:
            continue
        rows = zero_shot_by_alpha(m, setup.raw, setup.dataset.classes, alphas)
        sweep[name] = {f"{alpha:g}": row for alpha, row in rows.items()}
    return sweep
