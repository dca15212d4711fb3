"""What a bootstrap resample draws: images within each stratum, and entries of a level (seeds, noise draws).

Every protocol writes the number its table prints as a function of a `Sample`: image weights per
stratum (how often each image is drawn) and picks per level (which noise draws, which training seeds).
`OBSERVED` weighs every image once and picks every entry once: the table's own value. `Resamples` gives
`n_boot` resamples: images drawn with replacement within a stratum (a domain's images; within each
class of it where a protocol needs class sizes kept), entries of a level drawn with replacement.

A resample's image weights are counts: as many images drawn uniformly with replacement as the stratum (or each
class of it) holds, counted with one bincount (the multinomial the bootstrap calls for), kept as float32 (exact
integers below 2^24 images) in an image-major layout that sparse products read in place.

Memory stays bounded: the resamples are drawn and evaluated a chunk of `CHUNK_ROWS` at a time
(`Resamples.chunks`), and chunk i of a stratum comes from a generator keyed by (seed, stratum, i), so the
same (seed, stratum, image, resample) gets the same weight wherever and whenever it is computed: every
model sees the same resamples (differences are paired), a stratum shared by several domains (one OOD set)
is drawn once per chunk and reused by each of them, and no more than one chunk's weights are ever held
(CHUNK_ROWS x images x 4 bytes, not n_boot x images).
"""

from __future__ import annotations

import threading
import zlib
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import numpy as np

from clap.defaults import N_BOOT


class Sample(Protocol):
    """Image weights and level picks of one or many resamples (`rows` of them)."""

    rows: int

    def weights(self, key: str, n: int, classes: np.ndarray | None = None) -> np.ndarray:
        """[rows, n] how often each of a stratum's n images is drawn (within each class, given `classes`): counts, as
        float32 from `Resamples` (cast them to float64 before a product with float64 values, or use `Series`)."""

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
        self._drawing = threading.Lock()  # statistics of several models may ask for a stratum at once

    def _rng(self, kind: str, key: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(f"{kind}:{key}".encode()), self.index])

    def weights(self, key: str, n: int, classes: np.ndarray | None = None) -> np.ndarray:
        labels = np.zeros(n, dtype=int) if classes is None else np.asarray(classes)
        with self._drawing:
            if key not in self._weights:
                self._weights[key] = (labels, counts_of(self._draws(key, labels), len(labels)))
        known, w = self._weights[key]
        if not np.array_equal(known, labels):
            raise ValueError(f"stratum '{key}' was drawn for other images")
        return w

    def _draws(self, key: str, labels: np.ndarray) -> np.ndarray:
        """[rows, n] the images each resample draws: as many draws as images, uniformly with replacement within
        each class (the whole stratum when it has one class)."""
        rng, classes = self._rng("images", key), np.unique(labels)
        if len(classes) == 1:
            return rng.integers(0, len(labels), (self.rows, len(labels)))
        drawn = np.empty((self.rows, len(labels)), dtype=np.int64)
        for c in classes:
            members = np.flatnonzero(labels == c)
            drawn[:, members] = members[rng.integers(0, len(members), (self.rows, len(members)))]
        return drawn

    def picks(self, key: str, n: int) -> np.ndarray:
        return self._rng("level", key).integers(0, n, (self.rows, n))


EXACT_FLOAT32 = 2**24  # integers up to here are exact in float32
INT8_MAX = 127


def counts_of(drawn: np.ndarray, n: int) -> np.ndarray:
    """[rows, n] how often each of n images is among a row's n draws (`drawn` [rows, n] image indices): one bincount,
    laid out image-major (a Fortran-ordered array) so that products with a sparse [bins, n] matrix read it without a
    copy. float32 below `EXACT_FLOAT32` images, where every count and every sum of counts (at most n) is an exact
    integer, so products with float32 counts or hits are exact at half the memory; float64 above."""
    rows = len(drawn)
    flat = (drawn * rows + np.arange(rows)[:, None]).ravel()
    dtype = np.float32 if n < EXACT_FLOAT32 else np.float64
    return np.bincount(flat, minlength=n * rows).reshape(n, rows).astype(dtype).T


class Series:
    """Per-image values [n], or k series of them [k, n] (NaN where an image has no value), prepared once for weighted
    means under many samples (`means`): stacked with their denominators (ones, or the seen mask where values are
    missing). Sums are taken in float32 where every weighted sum of float32 counts (n draws) stays an exact integer
    (integral values, |values| x n below `EXACT_FLOAT32`), so that each product reads the weights once, at half the
    memory; small integers (hits, their differences) are kept as int8, a byte an image and series."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        self.shape, series = values.shape, np.atleast_2d(values)
        self.rows, seen = len(series), ~np.isnan(series)
        stacked = (np.vstack([series, np.ones(series.shape[1])]) if seen.all()
                   else np.vstack([np.where(seen, series, 0.0), seen]))
        integral, top = np.array_equal(stacked, np.rint(stacked)), np.abs(stacked).max(initial=0)
        self._dtype = np.float32 if integral and top * stacked.shape[1] < EXACT_FLOAT32 else np.float64
        self._stacked = stacked.astype(np.int8 if integral and top <= INT8_MAX else self._dtype)

    @classmethod
    def of(cls, values: "np.ndarray | Series") -> "Series":
        return values if isinstance(values, Series) else cls(values)

    def means(self, weights: np.ndarray) -> np.ndarray:
        """[rows] the weighted means of a single series, [rows, k] of k, under `weights` [rows, n]: numerators and
        denominators from one product. Counts meet integral values exactly, so a series gets the same mean alone
        or with others, in float32 or float64."""
        dtype = self._dtype if weights.dtype == self._dtype else np.float64  # float64 weights: float64 (exact casts)
        stacked = self._stacked.astype(dtype, copy=False)
        sums = np.asarray(weights.astype(dtype, copy=False) @ stacked.T, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums[:, :self.rows] / sums[:, self.rows:]
        return means[:, 0] if len(self.shape) == 1 else means


def weighted_mean(weights: np.ndarray, values: "np.ndarray | Series") -> np.ndarray:
    """[rows] weighted means of per-image values [n], or [rows, k] of k such series [k, n], NaN values left out
    per row (`Series.means`; prepare a `Series` once where the same values meet many samples)."""
    return Series.of(values).means(weights)


def images_of(hits: Mapping[str, "np.ndarray | Series"]) -> int:
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
