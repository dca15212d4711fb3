"""t-SNE maps of image features per domain, coloured by class: one PNG per model."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from sklearn.manifold import TSNE

from clap.evaluation.statistics.stats import SEED_MEMBER

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup


def embed_2d(features: torch.Tensor, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates of L2-normalised features."""
    x = torch.nn.functional.normalize(features.float(), dim=-1).numpy()
    perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_tsne(model, raw_by_domain: dict, classnames: Sequence[str], title: str, path: str | Path,
              seed: int = 0) -> Path:
    """Write a grid of per-domain t-SNE scatter plots of the model's (adapted) image features."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(raw_by_domain)
    cols = min(4, len(domains))
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    cmap = plt.get_cmap("tab20" if len(classnames) > 10 else "tab10")
    for ax, domain in zip(axes.flat, domains):
        data = raw_by_domain[domain]
        xy = embed_2d(model.adapted(data.features), seed)
        ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(int(c) % cmap.N) for c in data.labels], s=6)
        ax.set_title(domain, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(domains):]:
        ax.axis("off")
    if len(classnames) <= 20:
        handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(i % cmap.N), label=n)
                   for i, n in enumerate(classnames)]
        fig.legend(handles=handles, loc="lower center", ncol=min(10, len(classnames)), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tsne_figures(setup: EvalSetup, seed: int = 0) -> dict[str, tuple[str, Callable[[Path], Path]]]:
    """{model: (PNG file name, a function drawing its t-SNE into a folder)}, one per model (the first seed of
    a repeated adapter)."""
    figures = {}
    for name, m in setup.models.items():
        if SEED_MEMBER.match(name) and not name.endswith("#1"):
            continue  # one seed of each repeated adapter shows the picture
        file = f"tsne_{name.replace(' ', '_').replace('.', '')}.png"
        figures[name] = (file, partial(_draw, m, setup, name, file, seed))
    return figures


def _draw(model, setup: EvalSetup, name: str, file: str, seed: int, folder: Path) -> Path:
    return plot_tsne(model, setup.raw, setup.dataset.classes, f"t-SNE of {name} image features", folder / file, seed)
