"""What a bootstrap resample draws: images within each stratum, and entries of a level (seeds, noise draws).

Every protocol writes the number its table prints as a function of a `Sample`: image weights per
stratum (how often each image is drawn) and picks per level (which noise draws, which training seeds).
`OBSERVED` weighs every image once and picks every entry once: the table's own value. `Resamples` gives
`n_boot` resamples: images drawn with replacement within a stratum (a domain's images; within each
class of it where a protocol needs class sizes kept), entries of a level drawn with replacement.

Memory stays bounded: the resamples are drawn and evaluated a chunk of `CHUNK_ROWS` at a time
(`Resamples.chunks`), and chunk i of a stratum comes from a generator keyed by (seed, stratum, i), so the
same (seed, stratum, image, resample) gets the same weight wherever and whenever it is computed: every
model sees the same resamples (differences are paired), a stratum shared by several domains (one OOD set)
is drawn once per chunk and reused by each of them, and no more than one chunk's weights are ever held
(CHUNK_ROWS x images x 8 bytes, not n_boot x images).
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import numpy as np

from clap.defaults import N_BOOT


class Sample(Protocol):
    """Image weights and level picks of one or many resamples (`rows` of them)."""

    rows: int

    def weights(self, key: str, n: int, classes: np.ndarray | None = None) -> np.ndarray:
        """[rows, n] how often each of a stratum's n images is drawn (within each class, given `classes`)."""

    def picks(self, key: str, n: int) -> np.ndarray:
        """[rows, n] indices into a level of n entries, drawn with replacement."""


class Observed:
    """The data as observed: every image once, every entry of a level once."""

    rows = 1

    def weights(self, key: str, n: int, classes: np.ndarray | None = None) -> np.ndarray:
        return np.ones((1, n))

    def picks(self, key: str, n: int) -> np.ndarray:
        return np.arange(n)[None]


OBSERVED = Observed()


CHUNK_ROWS = 50  # resamples drawn and evaluated together


class Resamples:
    """`n_boot` bootstrap resamples, drawn a chunk at a time (`chunks`); `weights` and `picks` give all rows at once
    (the same values the chunks give), for small data and the seed level."""

    def __init__(self, n_boot: int = N_BOOT, seed: int = 0) -> None:
        self.rows, self.seed = n_boot, seed

    def chunks(self) -> Iterator["ResampleChunk"]:
        """The resamples in chunks of CHUNK_ROWS rows, in order."""
        for index, start in enumerate(range(0, self.rows, CHUNK_ROWS)):
            yield ResampleChunk(self.seed, index, min(CHUNK_ROWS, self.rows - start))

    def weights(self, key: str, n: int, classes: np.ndarray | None = None) -> np.ndarray:
        return np.concatenate([chunk.weights(key, n, classes) for chunk in self.chunks()])

    def picks(self, key: str, n: int) -> np.ndarray:
        return np.concatenate([chunk.picks(key, n) for chunk in self.chunks()])


class ResampleChunk:
    """Rows of one chunk of `Resamples`: drawn from generators keyed by (seed, key, chunk index), each stratum's
    weights kept while the chunk is evaluated (every model, every task) and dropped with it."""

    def __init__(self, seed: int, index: int, rows: int) -> None:
        self.seed, self.index, self.rows = seed, index, rows
        self._weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _rng(self, kind: str, key: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(f"{kind}:{key}".encode()), self.index])

    def weights(self, key: str, n: int, classes: np.ndarray | None = None) -> np.ndarray:
        labels = np.zeros(n, dtype=int) if classes is None else np.asarray(classes)
        if key in self._weights:
            known, w = self._weights[key]
            if not np.array_equal(known, labels):
                raise ValueError(f"stratum '{key}' was drawn for other images")
            return w
        rng, w = self._rng("images", key), np.zeros((self.rows, len(labels)))
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            w[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=self.rows)
        self._weights[key] = (labels, w)
        return w

    def picks(self, key: str, n: int) -> np.ndarray:
        return self._rng("level", key).integers(0, n, (self.rows, n))


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[rows] weighted means of per-image values [n], or [rows, k] of k such series [k, n] in one product (NaN values
    left out, per row). Weights are counts, so on 0/1 values (hits) every sum is exact and a series gets the same mean
    alone or with others."""
    values = np.asarray(values, dtype=float)
    seen = ~np.isnan(values)
    if seen.all():  # every image counts: the denominators are the weights' sums (counts: the same exact sums)
        sums = weights.sum(axis=1)
        return (weights @ values.T) / (sums if values.ndim == 1 else sums[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ np.where(seen, values, 0.0).T) / (weights @ seen.T)


def images_of(hits: Mapping[str, np.ndarray]) -> int:
    """How many images per-image results hold ([N], or [draws or seeds, N])."""
    return next(iter(hits.values())).shape[-1]


def per_domain(records: Mapping[str, Any], stratum: str,
               statistics: Callable[[Any, str, "Sample"], dict[str, np.ndarray]]):
    """A table's mean row as a function of a sample: the unweighted mean over domains of
    `statistics(record, "<stratum>:<domain>", sample)` for records {domain: record}."""
    return lambda sample: domain_mean(statistics(r, f"{stratum}:{d}", sample) for d, r in records.items())


def domain_mean(per_domain: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The unweighted mean over domains of each statistic (the table's mean row), per resample."""
    rows = list(per_domain)
    return {k: np.mean([r[k] for r in rows], axis=0) for k in rows[0]}


def as_row(statistics: dict[str, np.ndarray]) -> dict[str, float]:
    """A table row from statistics of `OBSERVED` (one value each)."""
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in statistics.items()}
