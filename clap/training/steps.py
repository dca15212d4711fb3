"""Step-indexed datasets of frozen features, produced ahead in chunks.

Everything a training step needs from the frozen backbone is a function of (seed, rank, step), never
of the adapter, so it is computed for `chunk_steps` steps at a time in large batches. Indexing by
global step makes a resumed run see exactly the data an uninterrupted run would have seen.
"""

from __future__ import annotations

import abc
import logging
from typing import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from clap.errors import ClapError
from clap.options import NAME, PRECISION, SEED, Count, Device, Kind, Text, check_options

logger = logging.getLogger(__name__)

Producer = Callable[[int], dict[str, torch.Tensor]]


class StepDataset(Dataset):
    """Item i is the batch of global step `start + i`, sliced from the chunk that holds it.

    `produce_chunk` is called once per item; wrap it in `LastChunk` so each chunk is produced once.
    """

    def __init__(self, produce_chunk: Producer, batch_size: int, chunk_steps: int, start: int, end: int) -> None:
        if end < start:
            raise ValueError(f"empty step range {start}..{end}")
        self.produce_chunk = produce_chunk
        self.batch_size = batch_size
        self.chunk_steps = chunk_steps
        self.start, self.end = start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        step = self.start + i
        chunk, offset = divmod(step, self.chunk_steps)
        rows = slice(offset * self.batch_size, (offset + 1) * self.batch_size)
        return {k: v[rows] for k, v in self.produce_chunk(chunk).items()}


class LastChunk:
    """Wraps a producer, keeping its most recent chunk: windows that share a chunk produce it once."""

    def __init__(self, produce_chunk: Producer) -> None:
        self.produce_chunk = produce_chunk
        self.index: int | None = None
        self.chunk: dict[str, torch.Tensor] = {}

    def __call__(self, chunk: int) -> dict[str, torch.Tensor]:
        if chunk != self.index:
            self.chunk, self.index = self.produce_chunk(chunk), chunk
        return self.chunk


def window_loader(trainer, window: int, produce_chunk: Producer, batch_size: int, chunk_steps: int) -> DataLoader:
    """A loader over the steps from the trainer's global step to the end of its window (one epoch)."""
    start = trainer.global_step if trainer is not None else 0
    end = (start // window + 1) * window
    return DataLoader(StepDataset(produce_chunk, batch_size, chunk_steps, start, end), batch_size=None)


def load_and_encode(backbone, paths: list, batch_size: int) -> tuple[list[int], list, torch.Tensor]:
    """Indices of the readable images among `paths`, those images, and their frozen image features; unreadable
    files are skipped with a warning, and none readable is an error."""
    from clap.batching import encode_in_batches
    from clap.data.domains import load_image

    loaded = [load_image(p) for p in paths]
    keep = [i for i, im in enumerate(loaded) if im is not None]
    if not keep:
        raise ClapError(f"none of the {len(paths)} images could be read")
    if len(keep) < len(paths):
        logger.warning("skipped %d unreadable images", len(paths) - len(keep))
    images, tf = [loaded[i] for i in keep], backbone.eval_transform
    with torch.no_grad():
        features = encode_in_batches(lambda batch: backbone.encode_image(torch.stack([tf(im) for im in batch])),
                                     images, batch_size)
    return keep, images, features


def trainer_rank(trainer) -> int:
    return trainer.global_rank if trainer is not None else 0


class FrozenFeatureDataModule(L.LightningDataModule, abc.ABC):
    """What both routes' data modules share: the frozen backbone, work done once, chunked steps, windows.

    It takes the arguments every route shares (declared here once; subclasses take their own, pass these on
    by name and save all as hyperparameters), and subclasses provide the route-specific parts below.

    Args:
        model: backbone (None = the embedded tiny CLIP); see `clap.load_backbone`.
        pretrained: pretrained tag or weights file of the backbone.
        quick_gelu, preprocess: architecture flags of an open_clip weights file (see `clap.load_backbone`).
        dataset_name: recorded in the adapter config (default: the preset or folder name).
        seed: sampling seed.
        device: where the frozen backbone runs.
        precision: its encoders' numerics: fp32, bf16 or fp16 autocast (fp16: CUDA only); auto = fp16 on CUDA.
    """

    LIMITS: dict[str, Kind] = {
        "model": Text(what="a model name, config file or folder"), "pretrained": Text(what="a tag or weights file"),
        "dataset_name": NAME, "batch_size": Count(), "window": Count(), "chunk_samples": Count(),
        "encode_batch_size": Count(), "seed": SEED, "device": Device(), "precision": PRECISION}

    def __init__(self, model: str | None = None, pretrained: str | None = None, dataset_name: str | None = None,
                 seed: int = 0, device: str = "auto", precision: str = "auto", quick_gelu: bool | None = None,
                 preprocess: dict | None = None) -> None:
        check_options(self.LIMITS, locals())
        super().__init__()
        self.save_hyperparameters()  # a subclass saves again: then its own and these (defaults included)
        self.backbone = None
        self._chunks: LastChunk | None = None

    @property
    def chunk_steps(self) -> int:
        return max(1, self.hparams.chunk_samples // self.hparams.batch_size)

    @abc.abstractmethod
    def read_inputs(self) -> None:
        """Read and check the route's inputs (classes, images); sets `classes` and `dataset`."""

    @abc.abstractmethod
    def encode_once(self, backbone) -> None:
        """Compute the frozen features that never change between steps."""

    @abc.abstractmethod
    def producer(self, rank: int) -> Producer:
        """The chunk producer of one rank."""

    @abc.abstractmethod
    def training_data(self) -> dict:
        """What the adapter trains on, for its training summary and reports: route, counts, source."""

    def setup(self, stage: str | None = None) -> None:
        from clap.backbones.loading import load_backbone

        if self.backbone is not None:
            return
        hp = self.hparams
        self.read_inputs()
        backbone = load_backbone(hp.model, hp.pretrained, hp.device, quick_gelu=hp.quick_gelu,
                                 preprocess=hp.preprocess, precision=hp.precision)
        self.encode_once(backbone)
        self.backbone = backbone
        self.backbone_identity = backbone.identity.to_dict()
        self.embed_dim = backbone.embed_dim

    def train_dataloader(self) -> DataLoader:
        if self._chunks is None:
            self._chunks = LastChunk(self.producer(trainer_rank(self.trainer)))
        hp = self.hparams
        return window_loader(self.trainer, hp.window, self._chunks, hp.batch_size, self.chunk_steps)
