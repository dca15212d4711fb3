"""The CLIPN route's weights (Wang et al., ICCV 2023): the "no" text encoder, in one of two forms.

For a text t the frozen tower gives the "yes" feature g(t).
- `copy` (`CopiedNoEncoder`, the authors' architecture): g_no(t) = E_no(emb_no(t) + p), a trainable copy
  E_no of the whole text tower (token and position embeddings, transformer, final norm, projection),
  initialised from the frozen one, and P learnable whole-context "no" prompts p, zero at the start (so the
  copy starts equal to the frozen tower) and summed into the token embeddings: one prompt drawn per text
  in training (or their mean, as the authors draw from P + 1), their mean at inference.
- `frozen` (`NegationAdapter`, the package's lighter variant): g_no(t) = head(E_txt([no prompts; t])), n
  learned embeddings inserted after the start token (where the package inserts IGN noise) through the
  frozen tower, then the package's zero-initialised residual disentangler; n x width + 2 D^2 numbers.
`experiments/clipn/ablation.py` measures the two against each other and against the head alone (README).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clap.adapter.config import AdapterConfig
from clap.adapter.disentangler import TRAINING_ALPHA, Disentangler, SavedAdapter
from clap.errors import ClapError

PROMPT_STD = 0.02  # initial scale of the "no" embeddings, as the method's IGN noise
TEMPERATURE = 0.01  # CLIP's logit scale 100 (CLIPN clamps its learned scale there)


class NegationAdapter(Disentangler, routes=("negation",)):
    """The frozen-tower variant: `Disentangler` as the "no" head, plus `no_prompts` [config.prompt_tokens,
    config.token_width]."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.no_prompts = nn.Parameter(torch.randn(config.prompt_tokens, config.token_width) * PROMPT_STD)

    @classmethod
    def variant(cls, config: AdapterConfig) -> type[SavedAdapter]:
        return CopiedNoEncoder if config.no_encoder == "copy" else cls

    def no_features(self, backbone, texts, alpha: float | None = None) -> torch.Tensor:
        """Normalised "no" features of texts (strings or token ids); `alpha` as in `Disentangler.forward`."""
        return F.normalize(self(backbone.encode_text_with_prompt(texts, self.no_prompts), alpha), dim=-1)

    def training_no_features(self, backbone, texts, generator: torch.Generator | None = None) -> torch.Tensor:
        """The "no" features training optimises (the head at its training weight; nothing is drawn)."""
        return self.no_features(backbone, texts, TRAINING_ALPHA)


def _key(name: str) -> str:
    """A parameter name of the backbone as a key of the copy's ParameterDict (which refuses dots)."""
    return name.replace(".", ":")


class _TextPath(nn.Module):
    """The backbone's "added prompt" text path as a module forward, for `torch.func.functional_call`."""

    def __init__(self, backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, texts, added: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_text_with_added(texts, added)


class CopiedNoEncoder(SavedAdapter):
    """The authors' "no" encoder: `tower` (a trainable copy of the text tower's parameters, keyed by their
    backbone names with ':' for '.') and `no_prompts` [P, context, width] (zero at the start). The backbone's
    own text path runs with the copy's parameters in place of the frozen ones (`torch.func.functional_call`),
    so any backbone with `text_parameters` works and the frozen tower is never touched."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.tower = nn.ParameterDict({_key(n): nn.Parameter(torch.zeros(shape))
                                       for n, shape in config.text_tower.items()})
        self.no_prompts = nn.Parameter(torch.zeros(config.prompt_tokens, config.context_length, config.token_width))

    @classmethod
    def from_backbone(cls, source, prompts: int = 16, **config) -> "CopiedNoEncoder":
        """A fresh copy of the `source` backbone's text tower with `prompts` zero "no" prompts; extra keywords go
        to the `AdapterConfig`."""
        frozen = source.text_parameters()
        adapter = cls(AdapterConfig(
            in_dim=source.embed_dim, route="negation", no_encoder="copy", prompt_tokens=prompts,
            token_width=source.token_width, context_length=source.context_length,
            text_tower={n: list(p.shape) for n, p in frozen.items()}, **config))
        with torch.no_grad():
            for name, p in frozen.items():
                adapter.tower[_key(name)].copy_(p.float())
        return adapter

    def _encode(self, backbone, texts, added: torch.Tensor) -> torch.Tensor:
        frozen = backbone.text_parameters()
        wrong = sorted(n for n, shape in self.config.text_tower.items()
                       if n not in frozen or list(frozen[n].shape) != shape)
        if wrong:
            raise ClapError(f"this copied 'no' encoder's text-tower parameters {wrong[:3]} are missing from the "
                            "backbone or shaped otherwise; use the backbone it was trained on")
        params = {f"backbone.model.{n}": self.tower[_key(n)].to(backbone.device) for n in self.config.text_tower}
        return torch.func.functional_call(_TextPath(backbone), params, (texts, added))

    def no_features(self, backbone, texts, alpha: float | None = None) -> torch.Tensor:
        """Normalised "no" features with the prompts' mean (inference); `alpha` has no meaning here."""
        return F.normalize(self._encode(backbone, texts, self.no_prompts.mean(0, keepdim=True)), dim=-1)

    def training_no_features(self, backbone, texts, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each text with one prompt drawn (from `generator`) among the P prompts and their mean: the authors'
        training draw."""
        pool = torch.cat([self.no_prompts, self.no_prompts.mean(0, keepdim=True)])
        pick = torch.randint(0, len(pool), (len(texts),), generator=generator)
        return F.normalize(self._encode(backbone, texts, pool[pick]), dim=-1)


def p_no(image: torch.Tensor, yes: torch.Tensor, no: torch.Tensor, temperature: float = TEMPERATURE
         ) -> torch.Tensor:
    """[N, K] probability that text k does *not* describe image i: exp(<f,g_no>/T) / (exp(<f,g>/T) +
    exp(<f,g_no>/T)), all features normalised."""
    return torch.sigmoid((image @ no.T - image @ yes.T) / temperature)


def clipn_losses(image: torch.Tensor, yes: torch.Tensor, no: torch.Tensor, temperature: float = TEMPERATURE,
                 same: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """CLIPN's losses on a batch of matched pairs (row i of each): image-text binary-opposite (matched pairs
    answer "yes", the others "no"), text semantic-opposite (2 - ||g - g_no||, their L2 form, epsilon 1e-4) and
    their total, 0.5 * (yes + no + tso) as in their training loop. `same` [N, N] (bool) marks unmatched pairs
    that describe the same thing (a pair drawn twice, or the same class): they are left out of the "no" term
    (the authors' `ClipLoss` masks nothing; their epoch sampler never draws a pair twice)."""
    prob_no = p_no(image, yes, no, temperature)
    eye = torch.eye(len(image), dtype=torch.bool, device=image.device)
    picked = torch.where(eye, 1 - prob_no, prob_no)
    nll = -torch.log(picked.clamp_min(1e-12))
    negative = ~eye if same is None else ~(eye | same.to(image.device))
    loss_yes = nll[eye].mean()
    loss_no = nll[negative].sum() / negative.sum().clamp_min(1)
    tso = (2 - torch.sqrt(2 - 2 * (yes * no).sum(-1) + 1e-4)).mean()
    return {"loss": 0.5 * (loss_yes + loss_no + tso), "loss_yes": loss_yes, "loss_no": loss_no, "loss_tso": tso}


def ctw_atd(p_yes: torch.Tensor, prob_no: torch.Tensor) -> dict[str, torch.Tensor]:
    """CLIPN's threshold-free rules for [N, K] class probabilities p_yes (softmax over classes) and p_no.

    CTW: k* = argmax p_yes; OOD when p_no[k*] > 0.5; score 1 - p_no[k*].
    ATD: p_ood = 1 - sum_k p_yes_k (1 - p_no_k); OOD when p_ood > max_k p_yes_k (1 - p_no_k); score 1 - p_ood.
    Scores: higher = more in-distribution."""
    k = p_yes.argmax(dim=1, keepdim=True)
    no_at_k = prob_no.gather(1, k).squeeze(1)
    joint = p_yes * (1 - prob_no)
    p_ood = 1 - joint.sum(dim=1)
    return {"CTW": 1 - no_at_k, "CTW_ood": no_at_k > 0.5,
            "ATD": 1 - p_ood, "ATD_ood": p_ood > joint.max(dim=1).values}
