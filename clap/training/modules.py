"""Thin LightningModules around the plain `Disentangler`: they own the loss and the optimiser.

The frozen backbone lives in the data module, so checkpoints hold only the adapter, the optimiser
state and the early-stopping window counters.
"""

from __future__ import annotations

import abc
from typing import Any

import lightning as L
import torch

from clap.adapter.config import ACTIVATIONS, NO_ENCODERS, AdapterConfig
from clap.adapter.disentangler import TRAINING_ALPHA, Disentangler, SavedAdapter
from clap.adapter.negation import CopiedNoEncoder, NegationAdapter, clipn_losses
from clap.errors import ClapError
from clap.options import ALPHA, NON_NEGATIVE, POSITIVE, Choice, Count, Kind, check_options
from clap.training.losses import clap_loss, info_nce

WINDOW_METRIC = "train/window_loss"


class AdapterModule(L.LightningModule, abc.ABC):
    """Shared parts: lazy adapter creation (dims from the data module), Adam, NaN guard, window loss. Its
    arguments are every route's (subclasses take their own and pass the rest on by name)."""

    route = "text"
    LR = 1e-4  # the learning rate when none is given (the method's)
    LIMITS: dict[str, Kind] = {"in_dim": Count(), "latent_dim": Count(), "out_dim": Count(),
                               "activation": Choice(ACTIVATIONS), "lr": POSITIVE, "weight_decay": NON_NEGATIVE,
                               "window": Count(), "inference_alpha": ALPHA}

    def __init__(self, in_dim: int | None = None, latent_dim: int | None = None, out_dim: int | None = None,
                 activation: str = "silu", lr: float | None = None, weight_decay: float = 0.0, window: int = 480,
                 inference_alpha: float = 1.0) -> None:
        check_options(self.LIMITS, locals())
        super().__init__()
        self.save_hyperparameters()
        self.adapter: Disentangler | None = None
        self.register_buffer("window_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("window_count", torch.zeros((), dtype=torch.long))
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_steps = 0
        if in_dim is not None:
            self._build(in_dim)

    def _build(self, in_dim: int) -> None:
        hp = self.hparams
        hp.in_dim = in_dim
        self.adapter = Disentangler(AdapterConfig(in_dim=in_dim, latent_dim=hp.latent_dim, out_dim=hp.out_dim,
                                                  activation=hp.activation, alpha=hp.inference_alpha, route=self.route))

    def configure_model(self) -> None:
        if self.adapter is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            if datamodule is None or not hasattr(datamodule, "embed_dim"):
                raise ClapError("the adapter's input size is unknown: give model in_dim or train with a data module")
            self._build(datamodule.embed_dim)

    def resolved_hparams(self) -> dict[str, Any]:
        """The hyper-parameters with each route default filled in (what the adapter's config records)."""
        return {**self.hparams, "lr": self.default_lr() if self.hparams.lr is None else self.hparams.lr}

    def default_lr(self) -> float:
        return self.LR

    def configure_optimizers(self):
        hp = self.resolved_hparams()
        return torch.optim.Adam(self.adapter.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])

    def train_features(self, z: torch.Tensor) -> torch.Tensor:
        """The adapter at the training weight (alpha 1), whatever inference alpha it records."""
        return self.adapter(z, alpha=TRAINING_ALPHA)

    @abc.abstractmethod
    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The route's loss terms; 'loss' is the one optimised."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise ClapError(f"loss became {loss.item()} at step {self.global_step}; training stopped, the last "
                            "good checkpoint is kept (lower the learning rate or check the features)")
        self._log_terms(terms)
        self._track_window(loss)
        return loss

    def _log_terms(self, terms: dict[str, torch.Tensor]) -> None:
        """Logs each loss term's mean since the last log, every `log_every_n_steps`, at window ends and at the end.

        Lightning's `self.log` costs about a millisecond a call, as much as a whole training step.
        """
        for key, value in terms.items():
            self._term_sums[key] = self._term_sums.get(key, 0.0) + value.detach()
        self._term_steps += 1
        step, trainer = self.global_step + 1, self._trainer
        every = max(1, trainer.log_every_n_steps) if trainer is not None else 1
        last = trainer is not None and step == trainer.max_steps
        if step % every == 0 or step % self.hparams.window == 0 or last:
            means = {f"train/{k}": v / self._term_steps for k, v in self._term_sums.items()}
            self.log_dict(means, prog_bar=True, batch_size=self._term_steps)
            self._term_sums, self._term_steps = {}, 0

    def _track_window(self, loss: torch.Tensor) -> None:
        self.window_sum += loss.detach().double()
        self.window_count += 1
        if (self.global_step + 1) % self.hparams.window == 0:
            mean = self.window_sum / self.window_count.clamp(min=1)
            self.log(WINDOW_METRIC, mean.float(), prog_bar=True, batch_size=1)
            self.window_sum.zero_()
            self.window_count.zero_()


class CLAPModule(AdapterModule):
    """CLAP (text route): InfoNCE_tau(f(t), f(t_aug)) + lambda * InfoNCE_tau_c(f(t_aug), f(c)).

    Args:
        in_dim: feature size (default: from the data module's backbone).
        latent_dim, out_dim: adapter sizes (default: in_dim).
        activation: first layer of the residual branch (the method: silu).
        tau, tau_c, lam: temperatures and weight of the class term (method: 0.5, 1.0, 1.0).
        lr, weight_decay: Adam (method: 1e-4 (the default), 0).
        window: steps per early-stopping window (method: 480).
        inference_alpha: the alpha recorded in the adapter for inference.
    """

    route = "text"
    LIMITS = {**AdapterModule.LIMITS, "tau": POSITIVE, "tau_c": POSITIVE, "lam": NON_NEGATIVE}

    def __init__(self, tau: float = 0.5, tau_c: float = 1.0, lam: float = 1.0, **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        super().__init__(**shared)
        self.save_hyperparameters()

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        prompt, augmented, name = (self.train_features(batch[k]) for k in ("prompt", "augmented", "class_name"))
        return clap_loss(prompt, augmented, name, hp.tau, hp.tau_c, hp.lam)


class ImAugModule(AdapterModule):
    """Im.Aug (image route): InfoNCE_tau(f(E_img(x)), f(E_img(x_aug))).

    Args: as `CLAPModule`, with `tau` the only temperature.
    """

    route = "image"
    LIMITS = {**AdapterModule.LIMITS, "tau": POSITIVE}

    def __init__(self, tau: float = 0.5, **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        super().__init__(**shared)
        self.save_hyperparameters()

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image, augmented = self.train_features(batch["image"]), self.train_features(batch["augmented"])
        return {"loss": info_nce(image, augmented, self.hparams.tau)}


class CLIPNModule(AdapterModule):
    """CLIPN (negation route): a "no" text encoder trained with the image-text binary-opposite and text
    semantic-opposite losses on image-caption pairs (`CaptionDataModule`). The feature size comes from the
    data module's backbone.

    Args:
        no_encoder: "copy" (the authors' architecture: a trainable copy of the whole text tower, initialised
            from the frozen one, with whole-context "no" prompts added to its token embeddings) or "frozen"
            (the package's lighter variant: prompts inserted after the start token through the frozen tower,
            then a residual "no" head).
        prompt_tokens: learned "no" prompts: whole-context prompts (copy; default 16, the authors' number) or
            inserted token embeddings (frozen; default 8; 0 = the head alone, a function of the "yes" feature).
        latent_dim, out_dim, activation: the "no" head (frozen encoder only).
        temperature: of the yes/no softmax; default the backbone's own, 1 / its pretrained logit scale (0.01 for
            OpenAI's CLIP, as the authors' clamped learned scale), recorded in the adapter's config.
        lr: Adam's learning rate (default 3e-4 for the copy, the authors' released ViT-B/16 run (lr_0.0003);
            1e-3 for the frozen variant, which `clap train` used to replace by the shared 1e-4: the command
            line took the parent class's default); weight_decay: Adam's.
        window, inference_alpha: as `CLAPModule` (alpha weighs the frozen variant's head).
    """

    route = "negation"
    LIMITS = {**AdapterModule.LIMITS, "prompt_tokens": Count(0, 64), "temperature": POSITIVE,
              "no_encoder": Choice(NO_ENCODERS)}
    DEFAULTS = {"copy": {"prompt_tokens": 16, "lr": 3e-4}, "frozen": {"prompt_tokens": 8, "lr": 1e-3}}

    def __init__(self, no_encoder: str = "frozen", prompt_tokens: int | None = None, temperature: float | None = None,
                 **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        if shared.get("in_dim") is not None:
            raise ClapError("CLIPNModule takes its feature size from the data module's backbone; drop in_dim")
        if no_encoder == "copy" and prompt_tokens == 0:
            raise ClapError("CLIPNModule.prompt_tokens = 0 leaves a copied 'no' encoder without prompts; give >= 1 "
                            "(the authors' 16) or use no_encoder frozen")
        self._frozen: list = []  # the data module's backbone, kept out of the state dict
        super().__init__(**shared)
        self.save_hyperparameters()

    def default_lr(self) -> float:
        return self.DEFAULTS[self.hparams.no_encoder]["lr"]

    def _step_generator(self) -> torch.Generator:
        """This step's draws (the copy's prompt per caption) from the data seed and the step alone, so a resumed
        run draws what the uninterrupted one did."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        seed = datamodule.hparams.seed if datamodule is not None else 0
        return torch.Generator().manual_seed(seed * 1_000_003 + self.global_step)

    def resolved_hparams(self) -> dict[str, Any]:
        tokens = self.hparams.prompt_tokens
        return {**super().resolved_hparams(), "temperature": self.temperature(),
                "prompt_tokens": self.DEFAULTS[self.hparams.no_encoder]["prompt_tokens"] if tokens is None else tokens}

    def temperature(self) -> float | None:
        """The yes/no softmax's T: the given one, else 1 / the backbone's logit scale (None before the backbone)."""
        if self.hparams.temperature is not None:
            return self.hparams.temperature
        return 1.0 / self._frozen[0].logit_scale if self._frozen else None

    def configure_model(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "token_width"):
            raise ClapError("the CLIPN route trains on image-caption pairs: use `data` CaptionDataModule")
        self._frozen = [datamodule.backbone]
        if self.adapter is None:
            self.adapter = self._new_adapter(datamodule)

    def _new_adapter(self, datamodule) -> SavedAdapter:
        hp = self.resolved_hparams()
        if hp["no_encoder"] == "copy":
            return CopiedNoEncoder.from_backbone(datamodule.backbone, hp["prompt_tokens"], alpha=hp["inference_alpha"])
        return NegationAdapter(AdapterConfig(
            in_dim=datamodule.embed_dim, latent_dim=hp["latent_dim"], out_dim=hp["out_dim"],
            activation=hp["activation"], alpha=hp["inference_alpha"], route=self.route,
            prompt_tokens=hp["prompt_tokens"], token_width=datamodule.token_width))

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        no = self.adapter.training_no_features(self._frozen[0], batch["tokens"], self._step_generator())
        same = batch["meaning"][:, None] == batch["meaning"][None, :]
        return clipn_losses(batch["image"], batch["yes"], no, self.temperature(), same)
