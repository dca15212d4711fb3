"""The method's losses: SimCLR NT-Xent InfoNCE and the CLAP objective."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """NT-Xent over the 2n samples of n pairs (a_i, b_i): each picks its partner among the other 2n-1."""
    if a.shape != b.shape:
        raise ValueError(f"InfoNCE needs paired batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=-1)
    logits = z @ z.T / tau
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def clap_loss(prompt: torch.Tensor, augmented: torch.Tensor, class_name: torch.Tensor, tau: float = 0.5,
              tau_c: float = 1.0, lam: float = 1.0) -> dict[str, torch.Tensor]:
    """InfoNCE_tau(f(t), f(t_aug)) + lambda * InfoNCE_tau_c(f(t_aug), f(c)), with both terms."""
    prompt_term = info_nce(prompt, augmented, tau)
    class_term = info_nce(augmented, class_name, tau_c)
    return {"loss": prompt_term + lam * class_term, "loss_prompt": prompt_term, "loss_class": class_term}
