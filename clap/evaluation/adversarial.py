"""Adversarial robustness: FGSM, PGD-20 and CW-20 against zero-shot and linear-probe classifiers.

Threat model: perturbations of pixels in [0, 1] within an L-inf ball of eps (8/255 by default); the
attacked model normalises inside and returns logits, and gradients flow through the frozen encoder
and the adapter. CW-20 is PGD on the CW margin loss. `protocol="paper"` reproduces the authors'
setting instead: the attack perturbs the normalised tensor (eps in normalised units) and clamps it
to [0, 1] after normalisation.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

EPS = 8 / 255
EPS_SWEEP = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
STEPS = 20
ATTACKS = ("FGSM", "PGD-20", "CW-20")
PROTOCOLS = ("pixel", "paper")


class AttackTarget(nn.Module):
    """pixels -> (normalise) -> frozen encoder -> adapter -> L2 normalise -> classifier head -> logits."""

    def __init__(self, model, head: Callable[[torch.Tensor], torch.Tensor], protocol: str = "pixel") -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol '{protocol}'; use pixel or paper")
        self.model, self.head, self.protocol = model, head, protocol

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        backbone = self.model.backbone
        with backbone.full_precision():  # attacks run in fp32, also on GPUs
            if self.protocol == "paper":  # x is already a normalised tensor
                raw = backbone._encode_pixels(x).float()
            else:
                raw = backbone.encode_image(x)
            return self.head(self.model.adapt(raw, normalize=True))


def zero_shot_head(weights: torch.Tensor, scale: float = 100.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Scaled cosine similarity with fixed class weights [D, C]."""
    weights = weights.detach()
    return lambda f: scale * f @ weights


def linear_head(probe) -> Callable[[torch.Tensor], torch.Tensor]:
    """A fitted scikit-learn logistic regression as a differentiable torch head."""
    coef = torch.tensor(probe.coef_, dtype=torch.float32)
    bias = torch.tensor(probe.intercept_, dtype=torch.float32)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row
        coef, bias = torch.cat([-coef / 2, coef / 2]), torch.cat([-bias / 2, bias / 2])
    return lambda f: f @ coef.to(f.device).T + bias.to(f.device)


def cw_margin(logits: torch.Tensor, labels: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """CW loss to maximise: best other logit minus the true logit, capped at kappa."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).max(dim=1).values
    return (other - true).clamp(max=kappa).mean()


def _loss(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels) if kind == "ce" else cw_margin(logits, labels)


def _gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = _loss(kind, model(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float = EPS,
         bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """One signed gradient step of size eps."""
    return (x + eps * _gradient(model, x, labels, "ce").sign()).clamp(*bounds).detach()


def pgd(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float = EPS, step: float | None = None,
        steps: int = STEPS, loss: str = "ce", random_start: bool = True, generator: torch.Generator | None = None,
        bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Projected gradient ascent in the eps ball (random start, signed steps of eps/10 by default)."""
    step = eps / 10 if step is None else step
    adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1
        adv = (x + eps * noise).clamp(*bounds)
    for _ in range(steps):
        adv = adv + step * _gradient(model, adv, labels, loss).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(*bounds).detach()
    return adv


def attack(name: str, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
           generator: torch.Generator, bounds: tuple[float, float]) -> torch.Tensor:
    """Adversarial inputs for one of ATTACKS."""
    if name == "FGSM":
        return fgsm(model, x, labels, eps, bounds)
    if name == "PGD-20":
        return pgd(model, x, labels, eps, generator=generator, bounds=bounds)
    if name == "CW-20":
        return pgd(model, x, labels, eps, loss="cw", generator=generator, bounds=bounds)
    raise ValueError(f"unknown attack '{name}'; use one of {', '.join(ATTACKS)}")


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return (model(x).argmax(1) == labels).cpu().numpy()


def eps_label(eps: float) -> str:
    """An epsilon in the form people write it: 8/255."""
    return f"{eps * 255:.3g}/255"


def parse_eps(text: str) -> float:
    """'8/255' or '0.031' -> a float in (0, 1]."""
    num, slash, den = text.partition("/")
    try:
        value = float(num) / (float(den) if slash else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"epsilon '{text}' is not a number or a fraction such as 8/255") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"epsilon '{text}' must be in (0, 1] (pixels are in [0, 1]); e.g. 8/255")
    return value


def robust_correct(target: AttackTarget, pixels: torch.Tensor, labels: torch.Tensor,
                   attacks: Sequence[str] = ATTACKS, epsilons: Sequence[float] = (EPS,), batch_size: int = 64,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Per image: right on the clean input ('clean'), and under each attack at each eps ('PGD-20', eps)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = target.model.backbone.normalize(pixels) if target.protocol == "paper" else pixels
    bounds = (0.0, 1.0)
    hits: dict = {"clean": []} | {(name, eps): [] for name in attacks for eps in epsilons}
    for i in range(0, len(inputs), batch_size):
        x, y = inputs[i:i + batch_size], labels[i:i + batch_size]
        hits["clean"].append(_correct(target, x, y))
        for name in attacks:
            for eps in epsilons:
                hits[(name, eps)].append(_correct(target, attack(name, target, x, y, eps, generator, bounds), y))
    return {key: np.concatenate(parts) for key, parts in hits.items()}


def robust_accuracies(target: AttackTarget, pixels: torch.Tensor, labels: torch.Tensor,
                      attacks: Sequence[str] = ATTACKS, eps: float = EPS, batch_size: int = 64,
                      seed: int = 0) -> dict[str, float]:
    """Clean and adversarial accuracy of `target` on pixels in [0, 1] at one eps."""
    hits = robust_correct(target, pixels, labels, attacks, (eps,), batch_size, seed)
    return {key if key == "clean" else key[0]: float(h.mean()) for key, h in hits.items()}


def subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """A seeded subset of at most `limit` indices out of n (all when limit is None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
