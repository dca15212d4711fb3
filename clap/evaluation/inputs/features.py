"""Raw image features of a domain dataset, computed once per backbone and reused by every protocol.

Adapters act on raw encoder outputs, so one pass of the frozen image encoder serves every prompt
set, adapter, alpha and probe. Features are written into one preallocated tensor batch by batch, so encoding holds
the features and one batch of decoded images, never all images. The on-disk cache holds a domain in files of
`CACHE_CHUNK` images, each keyed by the backbone identity and its files' paths, sizes and modification times: an
encoding that stops (Ctrl-C, a crash) resumes from its last whole chunk, and a changed file re-encodes its chunk only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm.auto import tqdm

from clap.backbones.base import Backbone
from clap.data.domains import DomainDataset, load_image
from clap.errors import first_line
from clap.fileio import save_tensors_atomic

logger = logging.getLogger(__name__)


@dataclass
class DomainFeatures:
    """Raw features of one domain's readable images, their class labels and paths."""

    features: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)


def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def cache_key(backbone: Backbone, paths: list[Path]) -> str:
    digest = backbone.feature_digest()
    for path in paths:
        digest.update(_file_key(path).encode())
    return digest.hexdigest()[:32]


CACHE_CHUNK = 8192  # images per cache file


def encode_paths(backbone: Backbone, paths: list[Path], bar: tqdm, batch_size: int = 128
                 ) -> tuple[torch.Tensor, list[int]]:
    """Raw features of the readable images and the indices (into `paths`) that were kept, advancing `bar`."""
    feats, kept = torch.empty(len(paths), backbone.embed_dim), []
    tf = backbone.eval_transform
    for start in range(0, len(paths), batch_size):
        batch, idx = [], []
        for i in range(start, min(start + batch_size, len(paths))):
            image = load_image(paths[i])
            if image is not None:
                batch.append(tf(image))
                idx.append(i)
        if batch:
            with torch.no_grad():
                feats[len(kept):len(kept) + len(idx)] = backbone.encode_image(torch.stack(batch)).float().cpu()
            kept += idx
        bar.update(min(batch_size, len(paths) - start))
    return _first_rows(feats, len(kept)), kept


def _first_rows(feats: torch.Tensor, n: int) -> torch.Tensor:
    """The first n rows, copied where fewer than all (unreadable images left none of their own)."""
    return feats if n == len(feats) else feats[:n].clone()


def domain_features(backbone: Backbone, dataset: DomainDataset, cache_dir: str | Path | None = None,
                    batch_size: int = 128, progress: bool = True) -> dict[str, DomainFeatures]:
    """Raw features per domain, each chunk of `CACHE_CHUNK` images from the cache when the backbone and its files
    are unchanged."""
    out = {}
    for domain in dataset.domains:
        samples = dataset.domain_samples(domain)
        paths = [p for p, _ in samples]
        feats, kept = torch.empty(len(paths), backbone.embed_dim), []
        with tqdm(total=len(paths), desc=f"encoding {domain}", unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, len(paths), CACHE_CHUNK):
                chunk_feats, chunk_kept = _chunk_features(backbone, paths[start:start + CACHE_CHUNK], cache_dir,
                                                          batch_size, bar)
                feats[len(kept):len(kept) + len(chunk_kept)] = chunk_feats
                kept += [start + i for i in chunk_kept]
        skipped = [str(paths[i]) for i in sorted(set(range(len(paths))) - set(kept))]
        if skipped:
            logger.warning("%s: skipped %d unreadable images", domain, len(skipped))
        labels = torch.tensor([samples[i][1] for i in kept], dtype=torch.long)
        out[domain] = DomainFeatures(_first_rows(feats, len(kept)), labels, [paths[i] for i in kept], skipped)
    return out


def _chunk_features(backbone: Backbone, paths: list[Path], cache_dir: str | Path | None, batch_size: int,
                    bar: tqdm) -> tuple[torch.Tensor, list[int]]:
    """One chunk's features and kept indices: from its cache file, or encoded (and then cached)."""
    cached = Path(cache_dir) / f"{cache_key(backbone, paths)}.safetensors" if cache_dir else None
    hit = _read_cache(cached, len(paths)) if cached is not None and cached.is_file() else None
    if hit is not None:
        bar.update(len(paths))
        return hit
    feats, kept = encode_paths(backbone, paths, bar, batch_size)
    if cached is not None:
        save_tensors_atomic({"features": feats, "kept": torch.tensor(kept, dtype=torch.long)}, cached)
    return feats, kept


def _read_cache(path: Path, n_paths: int) -> tuple[torch.Tensor, list[int]] | None:
    """A cache entry's (features, kept image indices); None, with a warning, when the file is damaged (it is
    then encoded again and rewritten)."""
    try:
        tensors = load_file(str(path))
        feats, kept = tensors["features"], tensors["kept"].tolist()
    except (SafetensorError, OSError, KeyError) as e:
        logger.warning("feature cache %s is unreadable (%s); encoding again", path, first_line(e, 80))
        return None
    if feats.dim() != 2 or len(feats) != len(kept) or any(not 0 <= i < n_paths for i in kept):
        logger.warning("feature cache %s does not match its images; encoding again", path)
        return None
    return feats, kept
