"""The evaluation's plots: alpha sweep (with the validation choice marked) and robust accuracy against eps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clap.evaluation.protocols.ood_scores import detection_metrics


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_alpha(sweep: dict, chosen: dict[str, float], path: Path) -> Path:
    """Mean zero-shot accuracy (C, PC, NC) against alpha per model; the alpha chosen on validation dotted."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (name, rows) in enumerate(sweep.items()):
        colour = f"C{k % 10}"
        alphas = [float(a) for a in rows]
        for form, style in (("C", "-"), ("PC", "--"), ("NC", ":")):
            ax.plot(alphas, [100 * rows[a][form] for a in rows], style, color=colour, marker="o", ms=3,
                    label=f"{name} ZS({form})")
        if name in chosen:
            ax.axvline(chosen[name], color=colour, linestyle=":", linewidth=1, label=f"{name}: alpha chosen on val")
    ax.set_xlabel("alpha (weight of the adapter's residual branch)")
    ax.set_ylabel("mean zero-shot accuracy (%)")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.legend(fontsize=6)
    return _save(fig, path)


def plot_eps_sweep(adversarial: dict, path: Path) -> Path:
    """Robust accuracy (mean over domains) against eps: one panel per classifier, a line per model and attack."""
    plt = _pyplot()
    heads = list(next(iter(adversarial.values())))
    fig, axes = plt.subplots(1, len(heads), figsize=(5 * len(heads), 4), squeeze=False)
    styles = {"FGSM": "-", "PGD-20": "--", "CW-20": ":"}
    for ax, head in zip(axes[0], heads):
        for k, (model, by_head) in enumerate(adversarial.items()):
            mean = by_head[head]["mean"]
            for attack in (a for a in mean if a != "clean"):
                labels = list(mean[attack])
                xs = [0.0] + [float(e.split("/")[0]) for e in labels]
                ys = [100 * mean["clean"]] + [100 * mean[attack][e] for e in labels]
                ax.plot(xs, ys, styles.get(attack, "-"), color=f"C{k % 10}", marker="o", ms=3,
                        label=f"{model} {attack}")
        ax.set_title(head)
        ax.set_xlabel("eps (x/255, pixels in [0, 1])")
        ax.set_ylabel("robust accuracy (%)")
        ax.legend(fontsize=6)
    return _save(fig, path)


def bin_edges(values: np.ndarray, bins: int, min_span: float = 1e-3) -> np.ndarray:
    """`bins` equal bins over the values' range, widened to `min_span` around them when they (nearly) coincide
    (numpy refuses bins finer than its float spacing: an untrained CLIPN copy scores every image 0.5)."""
    low, high = float(np.min(values)), float(np.max(values))
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    return np.linspace(low, high, bins + 1)


def plot_ood(scores: dict, path: Path) -> Path:
    """Per model (rows) and score (columns): histograms of ID and OOD scores with every domain weighted equally
    (as the table's mean is); a last row of domain-averaged ROC curves (TPR averaged over domains at each FPR),
    a line per model, labelled with the table's mean AUROC. `scores`: {model: {domain: {score: {"id", "ood"}}}}."""
    plt = _pyplot()
    models = list(scores)
    names = list(dict.fromkeys(s for per_domain in scores.values() for d in per_domain.values() for s in d))
    fig, axes = plt.subplots(len(models) + 1, len(names), figsize=(3.2 * len(names), 2.2 * (len(models) + 1)),
                             squeeze=False)
    grid = np.linspace(0, 1, 201)
    for i, model in enumerate(models):
        for j, score in enumerate(names):
            ax, domains = axes[i][j], [d[score] for d in scores[model].values() if score in d]
            if not domains:
                ax.axis("off")
                continue
            edges = bin_edges(np.concatenate([d[part] for d in domains for part in ("id", "ood")]), 30)
            for part, colour in (("id", "C0"), ("ood", "C3")):
                values = np.concatenate([d[part] for d in domains])
                weights = np.concatenate([np.full(len(d[part]), 1 / len(d[part])) for d in domains])
                ax.hist(values, bins=edges, weights=weights, alpha=0.5, color=colour, density=True, label=part.upper())
            ax.set_title(f"{model}: {score}", fontsize=8)
            ax.tick_params(labelsize=6)
    for j, score in enumerate(names):
        ax = axes[-1][j]
        for k, model in enumerate(models):
            domains = [d[score] for d in scores[model].values() if score in d]
            if not domains:
                continue
            tpr = np.mean([_roc_at(d["id"], d["ood"], grid) for d in domains], axis=0)
            auc = np.mean([detection_metrics(d["id"], d["ood"])["AUROC"] for d in domains])
            ax.plot(grid, tpr, color=f"C{k % 10}", label=f"{model} ({100 * auc:.1f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(f"ROC, mean over domains: {score}", fontsize=8)
        ax.set_xlabel("FPR (OOD accepted)", fontsize=7)
        ax.set_ylabel("TPR (ID accepted)", fontsize=7)
        ax.legend(fontsize=5)
    axes[0][0].legend(fontsize=6)
    return _save(fig, path)


def _roc_at(ids: np.ndarray, oods: np.ndarray, fpr_grid: np.ndarray) -> np.ndarray:
    """A domain's ROC curve (ID positive) read at the given false-positive rates."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(ids)), np.zeros(len(oods))], np.r_[ids, oods])
    return np.interp(fpr_grid, fpr, tpr)


def plot_openness(openness: dict, path: Path) -> Path:
    """Accuracy against the number of vocabularies (mean over domains): extensibility and stability."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "E_curve", "extensibility (images grow too)"),
                           (axes[1], "S_curve", "stability (target images only)")):
        for k, (model, rows) in enumerate(openness.items()):
            curves = [row[key] for d, row in rows.items() if d != "mean"]
            mean = [100 * sum(c[i] for c in curves) / len(curves) for i in range(len(curves[0]))]
            ax.plot(range(1, len(mean) + 1), mean, color=f"C{k % 10}", marker="o", ms=3, label=model)
        ax.set_title(title)
        ax.set_xlabel("vocabularies in the label set")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=6)
    return _save(fig, path)


def plot_margins(margins: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """The distribution of the margin (true-class cosine minus the best other class's) per model, each domain
    weighted equally, with the median marked: the openness paper's Figure of why vocabularies collide."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (model, per_domain) in enumerate(margins.items()):
        values = np.concatenate(list(per_domain.values()))
        weights = np.concatenate([np.full(len(v), 1 / len(v)) for v in per_domain.values()])
        ax.hist(values, bins=bin_edges(values, 60), weights=weights / weights.sum(), histtype="step",
                color=f"C{k % 10}", label=model)
        ax.axvline(float(np.median(values)), color=f"C{k % 10}", ls=":", lw=1)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("margin: cosine to the true class minus the best other class's (below 0: misclassified)")
    ax.set_ylabel("share of images (domains weighted equally)")
    ax.legend(fontsize=6)
    return _save(fig, path)


def plot_anomaly(examples: dict, path: Path) -> Path:
    """A row per shown scene: the image, its ground truth (anomaly white, void grey) and each model's heat map."""
    plt = _pyplot()
    models, scenes = list(examples["maps"]), sorted(examples["scenes"])
    fig, axes = plt.subplots(len(scenes), 2 + len(models), figsize=(2.2 * (2 + len(models)), 2.2 * len(scenes)),
                             squeeze=False)
    for row, i in zip(axes, scenes):
        image, truth = examples["scenes"][i]
        for ax, (title, picture, cmap) in zip(row, [("scene", image, None), ("anomaly (truth)", truth, "gray")]
                                              + [(f"{m}: {examples['heat']}", examples["maps"][m][i], "inferno")
                                                 for m in models]):
            ax.imshow(picture, cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return _save(fig, path)
