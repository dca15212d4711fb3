"""The CLIPN route's weights: learnable "no" prompt embeddings and a "no" text head (Wang et al., ICCV 2023).

For a text t the frozen tower gives the "yes" feature g(t); the "no" feature is
g_no(t) = head(E_txt([no prompts; t])): the learned embeddings go after the start token (where the
package inserts IGN noise) and pass through the frozen text tower, and the head is the package's
residual disentangler on the resulting text feature (zero-initialised, so training starts from the
prompted tower). CLIPN itself fine-tunes a full copy of the text tower; this lighter choice trains
n x width + 2 D^2 numbers and keeps one frozen tower (`experiments/clipn/ablation.py` measures it
against the head alone; README).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clap.adapter.config import AdapterConfig
from clap.adapter.disentangler import Disentangler

PROMPT_STD = 0.02  # initial scale of the "no" embeddings, as the method's IGN noise
TEMPERATURE = 0.01  # CLIP's logit scale 100 (CLIPN clamps its learned scale there)


class NegationAdapter(Disentangler, routes=("negation",)):
    """`Disentangler` as the "no" head, plus `no_prompts` [config.prompt_tokens, config.token_width]."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.no_prompts = nn.Parameter(torch.randn(config.prompt_tokens, config.token_width) * PROMPT_STD)

    def no_features(self, backbone, texts, alpha: float | None = None) -> torch.Tensor:
        """Normalised "no" features of texts (strings or token ids); `alpha` as in `Disentangler.forward`."""
        return F.normalize(self(backbone.encode_text_with_prompt(texts, self.no_prompts), alpha), dim=-1)


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
