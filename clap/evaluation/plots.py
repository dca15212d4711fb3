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
    fig.clf()
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
    path = _save(fig, path)
    plt.close(fig)
    return path


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
    path = _save(fig, path)
    plt.close(fig)
    return path
