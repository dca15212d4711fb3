"""What to generate: one job per (class, prompt, image index), with a deterministic seed and path."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass
from typing import Sequence

from clap.prompts.templates import AttributeVocab, PromptParts, class_prompts
from clap.fileio import folder_name

DEFAULT_SUFFIX = " in a random environment"


@dataclass(frozen=True)
class Job:
    """One image: its prompt structure, the text sent to the pipeline, its seed and where it goes."""

    parts: PromptParts
    index: int
    seed: int
    suffix: str

    @property
    def prompt(self) -> str:
        return self.parts.text() + self.suffix

    @property
    def relpath(self) -> str:
        return f"{folder_name(self.parts.class_name)}/{folder_name(self.parts.text())}/{self.index:03d}.png"

    def record(self) -> dict:
        """The manifest row of this job (without the generation settings)."""
        attributes = {k: v for k, v in dataclasses.asdict(self.parts).items() if k not in ("class_name", "swapped")}
        return {"path": self.relpath, "prompt": self.prompt, "template": self.parts.text(),
                "class_name": self.parts.class_name, "attributes": attributes, "seed": self.seed,
                "image_index": self.index}


def job_seed(base_seed: int, prompt: str, index: int) -> int:
    """A 63-bit seed that depends only on the base seed, the prompt and the image index."""
    digest = hashlib.sha256(f"{base_seed}\x00{prompt}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def build_jobs(classes: Sequence[str], images_per_prompt: int = 1, seed: int = 0, suffix: str = DEFAULT_SUFFIX,
               prompts_per_class: int | None = None, vocab: AttributeVocab | None = None) -> list[Job]:
    """All jobs in a fixed order; `prompts_per_class` keeps a fixed random subset of each class's prompts
    (the subset depends on the class only, so a new `seed` gives new images of the same prompts)."""
    jobs = []
    for name in classes:
        parts = class_prompts(name, vocab)
        if prompts_per_class is not None and prompts_per_class < len(parts):
            keep = sorted(random.Random(f"prompt-subset:{name}").sample(range(len(parts)), prompts_per_class))
            parts = [parts[i] for i in keep]
        for p in parts:
            for k in range(images_per_prompt):
                jobs.append(Job(p, k, job_seed(seed, p.text() + suffix, k), suffix))
    return jobs
