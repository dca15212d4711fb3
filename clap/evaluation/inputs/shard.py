"""Evaluation in shards: a slice of a dataset's domains evaluated alone, whose per-image records merge into exactly
the report of one run over every domain (`clap.evaluation.pipeline.shards`).

A shard is "I/N" (the I-th of N, from 1) or "torchrun": the rank and world size of a process that torchrun started
(`torchrun --nproc-per-node 4 -m clap eval ... --shard torchrun`), each rank on its own GPU. Shard I of N takes
every N-th domain from the I-th on, in the dataset's order, so that shards of similar domains are of similar size.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

from clap.data.domains import DomainDataset
from clap.errors import ClapError
from clap.options import Kind

TORCHRUN = "torchrun"
_FRACTION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardKind(Kind):
    """'I/N' with 1 <= I <= N, or 'torchrun'."""

    def convert(self, value: Any) -> str:
        text = str(value).strip()
        if text == TORCHRUN:
            return text
        match = _FRACTION.match(text)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError("expected I/N, the I-th of N shards (1 <= I <= N, e.g. 2/4), or 'torchrun'")
        return f"{int(match[1])}/{int(match[2])}"


SHARD = ShardKind()


@dataclass(frozen=True)
class Shard:
    """The `index`-th (from 1) of `count` shards of a dataset's domains; `local_rank`: the GPU of a torchrun rank."""

    index: int
    count: int
    local_rank: int | None = None

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str] = os.environ) -> "Shard":
        """A shard from 'I/N', or from torchrun's RANK, WORLD_SIZE and LOCAL_RANK for 'torchrun'."""
        text = SHARD.check("shard", text)
        if text != TORCHRUN:
            index, count = map(int, text.split("/"))
            return cls(index, count)
        try:
            rank, size = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        except (KeyError, ValueError):
            raise ClapError("shard 'torchrun' needs torchrun's RANK and WORLD_SIZE; launch with torchrun "
                            "--nproc-per-node N -m clap eval ... --shard torchrun, or give --shard I/N") from None
        return cls(rank + 1, size, int(environ.get("LOCAL_RANK", rank)))

    @property
    def name(self) -> str:
        """The shard's folder name under a report folder: shard-I-of-N."""
        return f"shard-{self.index}-of-{self.count}"

    def domains(self, domains: list[str]) -> list[str]:
        """This shard's domains: every `count`-th from the `index`-th."""
        if self.count > len(domains):
            raise ClapError(f"shard {self.index}/{self.count}: the dataset has {len(domains)} domains and shards "
                            f"split domains; use at most {len(domains)} shards")
        return domains[self.index - 1::self.count]

    def of(self, dataset: DomainDataset) -> DomainDataset:
        """The dataset restricted to this shard's domains (its classes, and their indices, unchanged)."""
        kept = self.domains(dataset.domains)
        position = {dataset.domains.index(d): i for i, d in enumerate(kept)}
        return replace(dataset, domains=kept,
                       samples=[(p, position[d], c) for p, d, c in dataset.samples if d in position])

    def device(self, device: str) -> str:
        """A torchrun rank's GPU (cuda:LOCAL_RANK) for 'auto' or 'cuda' where CUDA is present; else `device`."""
        import torch

        if self.local_rank is None or device not in ("auto", "cuda") or not torch.cuda.is_available():
            return device
        return f"cuda:{self.local_rank}"
