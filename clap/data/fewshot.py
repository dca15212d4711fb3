"""Seeded k-shot subsets per domain and class, written as index files of image paths (not copies)."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

from clap.data.domains import DomainDataset
from clap.errors import ClapError

logger = logging.getLogger(__name__)

DEFAULT_SHOTS = (1, 4, 8, 16, 32)


def split_name(domain: str, shots: int, seed: int) -> str:
    return f"{domain}/{shots}shot_seed{seed}.txt"


def pick_per_class(labels: Sequence[int], shots: int, seed: int, salt: str = "") -> list[int]:
    """Positions of `shots` items per class (all of a smaller class), sorted.

    Each (seed, salt, class) has one fixed random order and a k-shot set is its first k items,
    so smaller sets are nested in larger ones.
    """
    if shots < 1:
        raise ClapError(f"shots must be at least 1, got {shots}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(labels):
        by_class[int(label)].append(position)
    chosen = []
    for label, pool in sorted(by_class.items()):
        order = random.Random(f"{seed}:{salt}:{label}").sample(pool, len(pool))
        chosen.extend(order[:shots])
    return sorted(chosen)


def fewshot_indices(dataset: DomainDataset, domain: str, shots: int, seed: int) -> list[int]:
    """Indices into `dataset.samples` of `shots` images per class of one domain."""
    d = dataset.domains.index(domain)
    positions = [i for i, (_, dom, _) in enumerate(dataset.samples) if dom == d]
    labels = [dataset.samples[i][2] for i in positions]
    return [positions[j] for j in pick_per_class(labels, shots, seed, salt=domain)]


def write_fewshot_splits(dataset: DomainDataset, out: str | Path, shots: Sequence[int] = DEFAULT_SHOTS,
                         seeds: Sequence[int] = (0, 1, 2)) -> Path:
    """out/<domain>/<k>shot_seed<s>.txt (paths relative to the dataset root) + out/splits.json."""
    from clap.fileio import write_text_atomic

    out = Path(out)
    index = {"root": str(dataset.root.resolve()), "classes": dataset.classes, "splits": []}
    for domain in dataset.domains:
        (out / domain).mkdir(parents=True, exist_ok=True)
        for k in shots:
            _warn_short(dataset, domain, k)
            for seed in seeds:
                rows = [dataset.samples[i] for i in fewshot_indices(dataset, domain, k, seed)]
                lines = "".join(f"{p.relative_to(dataset.root).as_posix()}\t{dataset.classes[c]}\n" for p, _, c in rows)
                name = split_name(domain, k, seed)
                write_text_atomic(out / name, lines)
                index["splits"].append({"domain": domain, "shots": k, "seed": seed, "file": name, "size": len(rows)})
    write_text_atomic(out / "splits.json", json.dumps(index, indent=2) + "\n")
    return out / "splits.json"


def _warn_short(dataset: DomainDataset, domain: str, shots: int) -> None:
    """Once per domain and shot count (not per seed): classes whose every image is a shot."""
    d = dataset.domains.index(domain)
    sizes = Counter(c for _, dom, c in dataset.samples if dom == d)
    short = [size for size in sizes.values() if size <= shots]
    if short:
        logger.warning("%d classes of %s have no more than %d images for %d shots: a probe scored on the images "
                       "it was not fit on has none of theirs left", len(short), domain, min(short), shots)


def read_split(path: str | Path, root: str | Path) -> list[tuple[Path, str]]:
    """(image path, class name) pairs of an index file."""
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        rel, _, name = line.partition("\t")
        pairs.append((Path(root) / rel, name))
    return pairs
