"""Adversarial robustness: FGSM, PGD-20 and CW-20 against zero-shot and linear-probe classifiers.

Threat model: perturbations of pixels in [0, 1] within an L-inf ball of eps (8/255 by default); the
attacked model normalises inside and returns logits, and gradients flow through the frozen encoder
and the adapter. CW-20 is PGD on the CW margin loss. `protocol="paper"` reproduces the authors'
attack instead (the normalised-tensor threat model, only to compare with their numbers): it perturbs
the normalised tensor (eps in normalised units) and clamps it to [0, 1], takes cross-entropy on
unscaled cosines (logit scale 1) and CW with confidence 50; its clean row goes through the same clamp
(eps 0), which alone changes the images.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from clap.defaults import PROTOCOLS
from clap.errors import ClapError

EPS = 8 / 255
STEPS = 20
ATTACKS = ("FGSM", "PGD-20", "CW-20")
AUTOATTACK = "AutoAttack"  # optional (`--autoattack`): torchattacks' standard L-inf AutoAttack, a masking check
LOGIT_SCALE = {"pixel": 100.0, "paper": 1.0}  # zero-shot logits the attacks' losses see
CW_KAPPA = {"pixel": 0.0, "paper": 50.0}  # CW confidence


class AttackTarget(nn.Module):
    """pixels -> (normalise) -> frozen encoder -> adapter -> L2 normalise -> classifier head -> logits (the
    encoder with its batch norms folded: `Backbone.folded_norms`)."""

    def __init__(self, model, head: Callable[[torch.Tensor], torch.Tensor], protocol: str = "pixel") -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol '{protocol}'; use pixel or paper")
        self.model, self.head, self.protocol = model, head, protocol
        self.kappa = CW_KAPPA[protocol]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        backbone = self.model.backbone
        with backbone.full_precision(), backbone.folded_norms():  # fp32, also on GPUs; norms folded for speed
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


def cw_margins(logits: torch.Tensor, labels: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """CW loss to maximise, per input: best other logit minus the true logit, capped at kappa."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).max(dim=1).values
    return (other - true).clamp(max=kappa)


Loss = str | torch.Tensor  # "ce", "cw", or per input: True where the CW margin is its loss


def _loss(kind: Loss, logits: torch.Tensor, labels: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """The summed per-input losses: each input's gradient does not depend on the others in its batch."""
    if isinstance(kind, str):
        kind = torch.full(labels.shape, kind == "cw", device=labels.device)
    cw = cw_margins(logits, labels, kappa)
    return torch.where(kind, cw, F.cross_entropy(logits, labels, reduction="none")).sum()


def _gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, kind: Loss) -> torch.Tensor:
    """The loss gradient; the CW confidence is the attacked model's `kappa` (0 when it has none)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = _loss(kind, model(x), labels, getattr(model, "kappa", 0.0))
        (grad,) = torch.autograd.grad(loss, x)
    return grad


Budget = float | torch.Tensor  # one eps for the batch, or one per input, shaped to broadcast over it


def fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: Budget = EPS,
         bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """One signed gradient step of size eps."""
    return (x + eps * _gradient(model, x, labels, "ce").sign()).clamp(*bounds).detach()


def pgd(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: Budget = EPS, step: Budget | None = None,
        steps: int = STEPS, loss: Loss = "ce", random_start: bool = True, generator: torch.Generator | None = None,
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
    return attack_sweep(model, x, labels, (name,), (eps,), generator, bounds)[(name, eps)]


def attack_sweep(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, attacks: Sequence[str],
                 epsilons: Sequence[float], generator: torch.Generator, bounds: tuple[float, float]
                 ) -> dict[tuple[str, float], torch.Tensor]:
    """Adversarial inputs for every attack at every eps: {(attack, eps): inputs}.

    The settings run stacked in one batch (FGSM at every eps; PGD-20 and CW-20 at every eps together):
    every input's loss, and so its gradient, is its own, and the random starts are drawn in the order
    of one setting at a time, so this is `attack` per setting up to rounding (a batch's size can change
    the last bits of a gradient, and with them the sign of a component near zero).
    """
    unknown = [name for name in attacks if name not in (*ATTACKS, AUTOATTACK)]
    if unknown:
        raise ValueError(f"unknown attack '{unknown[0]}'; use one of {', '.join((*ATTACKS, AUTOATTACK))}")
    single = [(name, eps) for name in attacks if name == "FGSM" for eps in epsilons]
    iterative = [(name, eps) for name in attacks if name in ("PGD-20", "CW-20") for eps in epsilons]
    auto = {(AUTOATTACK, eps): autoattack(model, x, labels, eps, generator) for eps in epsilons
            if AUTOATTACK in attacks}
    adv: list[torch.Tensor] = []
    if single:
        adv += fgsm(model, *_stacked(x, labels, single), bounds).split(len(x))
    if iterative:
        inputs, y, eps = _stacked(x, labels, iterative)
        is_cw = torch.tensor([name == "CW-20" for name, _ in iterative], device=x.device).repeat_interleave(len(x))
        adv += pgd(model, inputs, y, eps, loss=is_cw, generator=generator, bounds=bounds).split(len(x))
    return dict(zip(single + iterative, adv)) | auto


def autoattack(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
               generator: torch.Generator) -> torch.Tensor:
    """Adversarial inputs of the standard L-inf AutoAttack (APGD-CE, APGD-T, FAB-T, Square; torchattacks'
    implementation, seeded from `generator`) on inputs in [0, 1]: a parameter-free check that a gain under
    PGD is not gradient masking."""
    try:
        import torchattacks
    except ImportError:
        raise ClapError("AutoAttack needs torchattacks (a test extra, pinned): pip install --no-deps "
                        "torchattacks==3.5.1") from None
    n_classes = int(model(x[:1]).shape[1])
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=n_classes, seed=seed)
    return attack(x.contiguous(), labels).detach()


def _stacked(x: torch.Tensor, labels: torch.Tensor, settings: list[tuple[str, float]]
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x and labels repeated once per setting, with each copy's eps shaped to broadcast over it."""
    eps = torch.tensor([e for _, e in settings], dtype=x.dtype, device=x.device).repeat_interleave(len(x))
    repeats = (len(settings),) + (1,) * (x.dim() - 1)
    return x.repeat(repeats), labels.repeat(len(settings)), eps.view(-1, *(1,) * (x.dim() - 1))


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
    """Per image: right on the clean input ('clean'), and under each attack at each eps ('PGD-20', eps).

    batch_size bounds the inputs of one forward pass, attack settings stacked (`attack_sweep`) included.
    """
    generator = torch.Generator().manual_seed(seed)
    paper = target.protocol == "paper"
    inputs = target.model.backbone.normalize(pixels) if paper else pixels
    bounds = (0.0, 1.0)
    hits: dict = {"clean": []} | {(name, eps): [] for name in attacks for eps in epsilons}
    stacked = len(epsilons) * max(1, sum(name != "FGSM" for name in attacks))  # inputs per image in a pass
    chunk = max(1, batch_size // max(1, stacked))
    for i in range(0, len(inputs), chunk):
        x, y = inputs[i:i + chunk], labels[i:i + chunk]
        hits["clean"].append(_correct(target, x.clamp(*bounds) if paper else x, y))  # the paper's eps-0 clamp
        for key, adv in attack_sweep(target, x, y, attacks, epsilons, generator, bounds).items():
            hits[key].append(_correct(target, adv, y))
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
