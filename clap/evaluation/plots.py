"""The evaluation's plots: alpha sweep (with the validation choice marked) and robust accuracy against eps."""

from __future__ import annotations

from pathlib import Path


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


def plot_ood(pooled: dict, path: Path) -> Path:
    """Per model (rows) and score (columns): histograms of ID and OOD scores (all domains pooled); a last row
    of ROC curves, a line per model."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    models = list(pooled)
    scores = list(dict.fromkeys(s for by_score in pooled.values() for s in by_score))
    fig, axes = plt.subplots(len(models) + 1, len(scores), figsize=(3.2 * len(scores), 2.2 * (len(models) + 1)),
                             squeeze=False)
    for i, model in enumerate(models):
        for j, score in enumerate(scores):
            ax, parts = axes[i][j], pooled[model].get(score)
            if parts is None:
                ax.axis("off")
                continue
            for part, colour in (("id", "C0"), ("ood", "C3")):
                ax.hist(parts[part], bins=30, alpha=0.5, color=colour, density=True, label=part.upper())
            ax.set_title(f"{model}: {score}", fontsize=8)
            ax.tick_params(labelsize=6)
    for j, score in enumerate(scores):
        ax = axes[-1][j]
        for k, model in enumerate(models):
            parts = pooled[model].get(score)
            if parts is None:
                continue
            labels = [1] * len(parts["id"]) + [0] * len(parts["ood"])
            fpr, tpr, _ = roc_curve(labels, [*parts["id"], *parts["ood"]])
            ax.plot(fpr, tpr, color=f"C{k % 10}", label=model)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(f"ROC: {score}", fontsize=8)
        ax.set_xlabel("FPR (OOD accepted)", fontsize=7)
        ax.set_ylabel("TPR (ID accepted)", fontsize=7)
        ax.legend(fontsize=5)
    axes[0][0].legend(fontsize=6)
    return _save(fig, path)


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
