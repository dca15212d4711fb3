"""VL4AD's mask decoder in miniature, on frozen dense features (the segmentation route).

N learned queries attend (transformer decoder layers) to a small pixel embedding of the frozen MaskCLIP features
and give, per query, class-agnostic mask logits (a dot product with the pixel embedding, upsampled to a
`mask_size` square) and an embedding v_i in the joint space. Mask classification is
c_i = softmax_k(cos(v_i, t_k) / T) against the frozen class text embeddings t_k and, as in Mask2Former, a learned
no-object embedding that unmatched queries are trained towards and that inference drops. VL4AD's pixel anomaly
score is then u = -max_k sum_i s_i c_ik (`pixel_class_scores`). A decoder may be trained on a max-logit concept
ensemble (each class the best of its concepts: synonyms, plurals, sub-concepts) and behind an adapter (CLAP's
adapted dense features and class text: a route's own feature space). Saved with `save_pretrained` (safetensors and
the config: sizes, dense scale, temperature, class names, template and concepts, the feature adapter, backbone
identity).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clap.adapter.config import AdapterConfig
from clap.adapter.disentangler import SavedAdapter

DECODER_DEFAULTS = {"queries": 16, "width": 64, "layers": 2, "heads": 4, "mask_size": 32, "dense_scale": 2.0,
                    "temperature": 0.05, "template": "a photo of a {}."}


class MaskDecoder(SavedAdapter, routes=("segmentation",)):
    """Queries over dense features -> (mask logits [B, N, S, S], query embeddings [B, N, D])."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        d, dim = config.decoder, config.in_dim
        width = d["width"]
        self.pixel = nn.Sequential(nn.Conv2d(dim, width, 1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1))
        self.queries = nn.Parameter(torch.randn(d["queries"], width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, d["heads"], dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, d["layers"])
        self.mask_head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.embed_head = nn.Linear(width, dim)
        self.no_object = nn.Parameter(torch.randn(dim) * 0.02)

    @property
    def temperature(self) -> float:
        return float(self.config.decoder["temperature"])

    @property
    def concepts(self) -> dict[str, list[str]] | None:
        """Each class's concepts when the decoder was trained on a max-logit concept ensemble, else None."""
        return self.config.decoder.get("concepts")

    @property
    def feature_adapter(self) -> dict | None:
        """The adapter (its file and alpha) whose features the decoder was trained on, or None (the frozen model's)."""
        return self.config.decoder.get("feature_adapter")

    def forward(self, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits [B, N, S, S] and query embeddings [B, N, D] of dense features [B, D, h, w]."""
        pixels = self.pixel(F.normalize(dense, dim=1))
        size = self.config.decoder["mask_size"]
        fine = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
        queries = self.layers(self.queries.expand(len(dense), -1, -1), pixels.flatten(2).transpose(1, 2))
        masks = torch.einsum("bnw,bwxy->bnxy", self.mask_head(queries), fine)
        return masks, self.embed_head(queries)

    def class_logits(self, embeddings: torch.Tensor, text: torch.Tensor, owners: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """cos(v_i, t_k) / T against the K class features [K, D] and the no-object embedding: [..., N, K + 1].
        Given `owners` [P] (the class of each of P concept features in `text` [P, D]), a class's cosine is the best
        of its concepts' (VL4AD's max-logit prompt ensemble)."""
        v = F.normalize(embeddings, dim=-1)
        cos = v @ F.normalize(text, dim=-1).T
        if owners is not None:
            cos = concept_max(cos, owners)
        no = v @ F.normalize(self.no_object.to(text.dtype), dim=0)[:, None]
        return torch.cat([cos, no], dim=-1) / self.temperature


def concept_max(cosines: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
    """[..., K] the best cosine of each class's concepts, from cosines [..., P] to concepts owned by class `owners`."""
    classes = int(owners.max()) + 1
    return torch.stack([cosines[..., owners == k].max(dim=-1).values for k in range(classes)], dim=-1)


def decoder_config(in_dim: int, classes: list[str], concepts: dict[str, list[str]] | None = None,
                   feature_adapter: dict | None = None, **sizes) -> AdapterConfig:
    """A segmentation adapter's config: the defaults with `sizes` replacing some, the classes' concepts (a max-logit
    ensemble) and the feature adapter it was trained behind, when there are."""
    unknown = sorted(set(sizes) - set(DECODER_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown decoder settings {unknown}")
    decoder = {**DECODER_DEFAULTS, **sizes, "concepts": concepts, "feature_adapter": feature_adapter}
    return AdapterConfig(in_dim=in_dim, route="segmentation", classes=list(classes), decoder=decoder)


def pixel_class_scores(mask_logits: torch.Tensor, class_probs: torch.Tensor) -> torch.Tensor:
    """VL4AD's per-pixel class scores sum_i s_i c_ik [B, K, S, S] from mask logits [B, N, S, S] (s = sigmoid) and
    mask class probabilities [B, N, K] (the no-object column already dropped)."""
    return torch.einsum("bnxy,bnk->bkxy", mask_logits.sigmoid(), class_probs)
