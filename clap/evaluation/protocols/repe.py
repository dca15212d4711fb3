"""REPE, retrieval-enhanced prompt engineering (Ren et al., "Delving into the Openness of CLIP", 2023).

Each class text feature t_c is mixed with the mean of the normalised features of captions retrieved for
the class: t_c <- normalise((1 - w) t_c + w mean_k(normalise(g_k))). As in the authors' code
(lancopku/clip-openness, `repe/repe.py` and `repe/dump_features.py`): only captions that name the class
are kept, the first K of them are averaged, w = 0.25 and K = 100 (their scripts' setting), and the result
is renormalised. The authors retrieve from LAION-5B with the class as the query; here the corpus is a
local caption file, ranked by the cosine between each caption's and the class prompt's text features
in the evaluated model's own space, and "names the class" means the whole class name as words
(their filter accepts any word of it, which for a name like "x mark" keeps almost every caption).
A class no caption names keeps its feature.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch.nn import functional as F

from clap.defaults import REPE_K, REPE_WEIGHT
from clap.errors import ClapError



def read_captions(path: str | Path) -> list[str]:
    """Captions from a JSONL file with a "caption" field per row (the world's captions layout) or a text file
    with one caption per line."""
    path = Path(path)
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ClapError(f"cannot read captions {path}: {e}") from None
    if path.suffix == ".jsonl":
        try:
            captions = [json.loads(line)["caption"] for line in lines]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ClapError(f"{path}: every line must be a JSON object with a \"caption\" field") from None
    else:
        captions = [line.strip() for line in lines]
    if not captions:
        raise ClapError(f"{path} holds no captions")
    return captions


def names_class(caption: str, classname: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(classname.lower())}(?!\w)", caption.lower()) is not None


@dataclass
class Repe:
    """A caption corpus encoded once by one model, ready to enhance that model's class features."""

    captions: list[str]
    features: torch.Tensor  # [N, D], normalised
    weight: float = REPE_WEIGHT
    k: int = REPE_K
    _naming: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # class -> captions naming it

    @classmethod
    def encode(cls, model, captions: Sequence[str], weight: float = REPE_WEIGHT, k: int = REPE_K,
               batch_size: int = 256) -> "Repe":
        with torch.no_grad():
            feats = torch.cat([model.encode_text(list(captions[i:i + batch_size]), normalize=True).cpu()
                               for i in range(0, len(captions), batch_size)])
        return cls(list(captions), feats, weight, k)

    def enhance(self, class_features: torch.Tensor, classnames: Sequence[str]) -> torch.Tensor:
        """[C, D] normalised class features -> their REPE-enhanced, renormalised versions."""
        if self.weight == 0:
            return class_features
        out = class_features.clone()
        for c, name in enumerate(classnames):
            keep = self.naming(name)
            if not keep.any():
                continue
            candidates = self.features[keep].to(class_features)
            top = (candidates @ class_features[c]).topk(min(self.k, len(candidates))).indices
            mean = candidates[top].mean(dim=0)
            out[c] = (1 - self.weight) * class_features[c] + self.weight * mean
        return F.normalize(out, dim=-1)

    def naming(self, classname: str) -> torch.Tensor:
        """Which captions name the class (computed once per class, reused by every template and task)."""
        if classname not in self._naming:
            self._naming[classname] = torch.tensor([names_class(t, classname) for t in self.captions])
        return self._naming[classname]
