"""The text route's data: class-balanced prompt batches with the method's augmentations, as frozen features.

Computed once per run (`Backbone.encode_texts`: every shared token prefix computed once): the features
of every class name and every template prompt, and (without IGN) of each deletion/swap variant the
first time it is drawn.
Per step, each sample takes the next class round robin, a random prompt of that class, the nlpaug
augmentation flow (OSD/OCD/ITD/ASD/SPO, drawing from the chunk's seeded generator) and, with IGN,
fresh Gaussian token embeddings; the noisy views are encoded a chunk of steps at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file

from clap.backbones.base import Backbone
from clap.defaults import NOISE_STD, NOISE_TOKENS
from clap.options import NON_NEGATIVE, PATH, PROBABILITY, Count, check_options
from clap.fileio import save_tensors_atomic
from clap.prompts.augment import AugmentationConfig, PromptRegistry
from clap.prompts.templates import AttributeVocab, PromptParts, class_prompts
from clap.training.steps import FrozenFeatureDataModule

logger = logging.getLogger(__name__)


class FeatureCache:
    """Text features on disk, keyed by backbone identity and the exact texts."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def key(self, backbone: Backbone, texts: Sequence[str]) -> str:
        digest = backbone.feature_digest()
        digest.update("\n".join(texts).encode())
        return digest.hexdigest()[:32]

    def get(self, backbone: Backbone, texts: Sequence[str], compute) -> torch.Tensor:
        path = self.folder / f"text-{self.key(backbone, texts)}.safetensors"
        if path.is_file():
            return load_file(str(path))["features"]
        features = compute()
        save_tensors_atomic({"features": features}, path)
        return features


@dataclass(frozen=True)
class NoiseConfig:
    """The method's IGN: `n_tokens` N(0, std^2) token embeddings at a random position (0 = off)."""

    n_tokens: int = NOISE_TOKENS
    std: float = NOISE_STD


class PromptBank:
    """Frozen features of the class names and of all template prompts, plus variant features on demand."""

    def __init__(self, backbone: Backbone, classes: Sequence[str], vocab: AttributeVocab,
                 encode_batch_size: int = 256, cache: FeatureCache | None = None) -> None:
        self.backbone = backbone
        self.classes = list(classes)
        self.prompts: list[list[PromptParts]] = [class_prompts(c, vocab) for c in self.classes]
        self.registry = PromptRegistry(p for ps in self.prompts for p in ps)
        self.encode_batch_size = encode_batch_size
        texts = [p.text() for ps in self.prompts for p in ps]
        self.class_features = self._encode(self.classes, cache)
        self.prompt_features = self._encode(texts, cache).view(len(self.classes), len(vocab), -1)
        self._variants: dict[str, torch.Tensor] = {}

    def _encode(self, texts: list[str], cache: FeatureCache | None) -> torch.Tensor:
        def compute() -> torch.Tensor:
            return self.backbone.encode_texts(texts, batch_size=self.encode_batch_size).cpu()

        return cache.get(self.backbone, texts, compute) if cache else compute()

    def variant_features(self, texts: list[str]) -> torch.Tensor:
        """Features of noise-free augmented prompts, each text encoded only the first time it is seen."""
        new = sorted({t for t in texts if t not in self._variants})
        if new:
            for text, feature in zip(new, self._encode(new, None)):
                self._variants[text] = feature
        return torch.stack([self._variants[t] for t in texts])

    def noisy_features(self, texts: list[str], noise: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
        """Features with fresh IGN noise per text (never cached)."""
        return self.backbone.encode_texts(texts, noise.n_tokens, noise.std, "random", generator,
                                          self.encode_batch_size).cpu()


def draw_samples(prompts: Sequence[Sequence[PromptParts]], registry: PromptRegistry, first: int, n: int,
                 rng: np.random.Generator, augmentation: AugmentationConfig
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Samples `first`..`first + n`: classes round robin, a random prompt of each, augmented by the nlpaug flow."""
    classes = (np.arange(first, first + n) % len(prompts)).astype(np.int64)
    picks = rng.integers(0, len(prompts[0]), size=n)
    flow = augmentation.flow(registry, draw=rng.random)
    texts = flow.augment([prompts[c][p].text() for c, p in zip(classes, picks)])
    return classes, picks, texts


class PromptChunks:
    """Produces the frozen features of `chunk_steps` consecutive steps of one rank."""

    def __init__(self, bank: PromptBank, augmentation: AugmentationConfig, noise: NoiseConfig, batch_size: int,
                 chunk_steps: int, seed: int, rank: int = 0) -> None:
        self.bank, self.augmentation, self.noise = bank, augmentation, noise
        self.batch_size, self.chunk_steps, self.seed, self.rank = batch_size, chunk_steps, seed, rank

    def sample(self, chunk: int) -> tuple[np.ndarray, np.ndarray, list[str], np.random.Generator]:
        """Class and prompt indices and augmented texts of a chunk, and the generator that drew them."""
        rng = np.random.default_rng([self.seed, self.rank, chunk])
        n = self.chunk_steps * self.batch_size
        classes, prompts, texts = draw_samples(self.bank.prompts, self.bank.registry, chunk * n, n, rng,
                                               self.augmentation)
        return classes, prompts, texts, rng

    def __call__(self, chunk: int) -> dict[str, torch.Tensor]:
        classes, prompts, texts, rng = self.sample(chunk)
        if self.noise.n_tokens > 0:
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            augmented = self.bank.noisy_features(texts, self.noise, generator)
        else:
            augmented = self.bank.variant_features(texts)
        c, p = torch.from_numpy(classes), torch.from_numpy(prompts)
        return {"prompt": self.bank.prompt_features[c, p], "augmented": augmented,
                "class_name": self.bank.class_features[c]}


class PromptDataModule(FrozenFeatureDataModule):
    """Class-balanced batches of (prompt, augmented prompt, class name) features for the CLAP text route.

    Args:
        classes: a preset (pacs, vlcs, officehome, domainnet, world), a class-list file, a dataset folder
            or a list of names.
        batch_size: prompts per step (the paper: 8; at least the number of classes is advised).
        window: steps per epoch; early stopping compares the mean loss of consecutive windows.
        osd, ocd, itd, asd, spo: augmentation probabilities (method defaults 0.5, 0.5, 0, 0, 0.5).
        ign_tokens, ign_std: inserted Gaussian noise tokens (0 tokens turns IGN off).
        vocab: folder with custom attribute lists (default: the method's).
        chunk_samples: samples encoded ahead at a time.
        encode_batch_size: texts per frozen forward.
        feature_cache: folder for on-disk text features (keyed by backbone identity and texts).
        shared: `FrozenFeatureDataModule`'s (model, pretrained, seed of prompts, augmentations and noise,
            device, precision, ...).
    """

    LIMITS = {**FrozenFeatureDataModule.LIMITS, **dict.fromkeys(("osd", "ocd", "itd", "asd", "spo"), PROBABILITY),
              "ign_tokens": Count(0, 64), "ign_std": NON_NEGATIVE, "vocab": PATH, "feature_cache": PATH}

    def __init__(self, classes: str | list[str] = "world", batch_size: int = 8, window: int = 480, osd: float = 0.5,
                 ocd: float = 0.5, itd: float = 0.0, asd: float = 0.0, spo: float = 0.5, ign_tokens: int = NOISE_TOKENS,
                 ign_std: float = NOISE_STD, vocab: str | None = None, chunk_samples: int = 4096,
                 encode_batch_size: int = 256, feature_cache: str | None = None, **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        super().__init__(**shared)
        self.save_hyperparameters()
        self.augmentation = AugmentationConfig(osd, ocd, itd, asd, spo)
        self.noise = NoiseConfig(ign_tokens, ign_std)
        self.bank: PromptBank | None = None

    def read_inputs(self) -> None:
        from clap.prompts.classes import load_classes

        hp = self.hparams
        self.classes = load_classes(hp.classes)
        self.dataset = hp.dataset_name or (Path(hp.classes).name if isinstance(hp.classes, str) else None)

    def encode_once(self, backbone: Backbone) -> None:
        hp = self.hparams
        vocab = AttributeVocab.from_folder(hp.vocab) if hp.vocab else AttributeVocab.default()
        cache = FeatureCache(hp.feature_cache) if hp.feature_cache else None
        self.bank = PromptBank(backbone, self.classes, vocab, hp.encode_batch_size, cache)

    def training_data(self) -> dict:
        return {"route": "text", "classes": len(self.classes), "prompts": sum(len(p) for p in self.bank.prompts),
                "source": str(self.hparams.classes)}

    def producer(self, rank: int) -> PromptChunks:
        hp = self.hparams
        return PromptChunks(self.bank, self.augmentation, self.noise, hp.batch_size, self.chunk_steps, hp.seed, rank)
