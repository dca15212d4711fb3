"""`CLAPModel`: a frozen backbone with the adapter applied after both encoders."""

from __future__ import annotations

import copy
import logging
from typing import Callable, Mapping, Sequence, TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from clap.adapter.disentangler import Disentangler
from clap.backbones.base import Backbone, BackboneIdentity, NoisePosition
from clap.defaults import NOISE_STD, NOISE_TOKENS
from clap.errors import ClapError
from clap.prompts.templates import format_template
from clap.runtime import release_freed_memory

logger = logging.getLogger(__name__)

T = TypeVar("T")


def per_model(models: Mapping[str, "CLAPModel"], compute: Callable[["CLAPModel"], T]) -> dict[str, T]:
    """{name: compute(model)}, computed once for all the models that are the frozen backbone
    (`CLAPModel.is_frozen`: their results are the same) and copied to the others among them."""
    out: dict[str, T] = {}
    frozen: T | None = None
    for name, model in models.items():
        if model.is_frozen() and frozen is not None:
            out[name] = copy.deepcopy(frozen)
            continue
        out[name] = compute(model)
        release_freed_memory()  # its temporaries, before the next model's
        if model.is_frozen():
            frozen = out[name]
    return out


def check_compatible(backbone: Backbone, adapter: Disentangler) -> None:
    """Refuse an adapter built for other features or another backbone."""
    if adapter.config.in_dim != backbone.embed_dim:
        raise ClapError(f"adapter expects {adapter.config.in_dim}-d features but {backbone.identity.describe()} "
                        f"gives {backbone.embed_dim}-d; use the backbone the adapter was trained on")
    recorded = adapter.config.backbone
    if recorded is None:
        logger.warning("adapter records no backbone identity; only its dimensions were checked")
        return
    trained_on = BackboneIdentity.from_dict(recorded)
    if not trained_on.matches(backbone.identity):
        differences = trained_on.architecture_differences(backbone.identity)
        if trained_on.checksum != backbone.identity.checksum:
            differences.append(f"weights sha256 {trained_on.checksum} vs {backbone.identity.checksum}")
        what = "mask decoder" if adapter.config.route == "segmentation" else "adapter"
        detail = f" ({what} vs backbone: {'; '.join(differences)})" if differences else ""
        mine, theirs = trained_on.describe(), backbone.identity.describe()
        where = f"another build of {mine}" if mine == theirs else f"{mine}, not on {theirs}"
        raise ClapError(f"{what} was trained on {where}{detail}; load that backbone with the same "
                        f"quick_gelu/preprocess (or retrain the {what})")


def check_templates(templates: Sequence[str], option: str = "") -> None:
    """Each prompt template needs slots where the class name goes: one '{}', or '{c}' once or more (filled every
    time, as CLIP_benchmark does); there is at least one template; any other brace is doubled ('{{', '}}') as in
    Python's str.format."""
    if isinstance(templates, str) or not templates:
        raise ClapError(f"{option}give a list of templates, got {templates!r}")
    for template in templates:
        problem = template_problem(template)
        if problem:
            raise ClapError(f"{option}template {template!r} {problem}; each template holds one '{{}}', or '{{c}}' "
                            "once or more, where the class name goes (write a literal brace as '{{' or '}}')")


def template_problem(template: str) -> str | None:
    """What is wrong with one prompt template's slots, or None."""
    import string

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        return f"does not parse ({e})"
    if not fields:
        return "has no slot"
    for name, spec, conversion in fields:
        if name not in ("", "c") or spec or conversion:
            return f"has the slot {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
    names = {name for name, _, _ in fields}
    if len(names) > 1:
        return "mixes '{}' and '{c}'"
    if names == {""} and len(fields) > 1:
        return f"has {len(fields)} '{{}}' slots (write '{{c}}' for a class name that appears more than once)"
    return None


class CLAPModel(nn.Module):
    """Frozen encoders + disentangler, with open_clip's `encode_image` / `encode_text` interface.

    The adapter is applied to the raw encoder outputs (before L2 normalisation); `alpha` weighs
    its residual branch (default: the adapter's recorded inference alpha). Without an adapter this
    is the plain backbone (the CLIP baseline).
    """

    def __init__(self, backbone: Backbone, adapter: Disentangler | None = None, alpha: float | None = None) -> None:
        super().__init__()
        if adapter is not None:
            if not isinstance(adapter, Disentangler):
                raise ClapError(f"CLAPModel needs a Disentangler adapter, not a {type(adapter).__name__}")
            check_compatible(backbone, adapter)
            adapter = adapter.to(backbone.device).eval()
        self.backbone = backbone
        self.adapter = adapter
        self.alpha = alpha if alpha is not None else (adapter.config.alpha if adapter is not None else 0.0)
        self.logit_scale = nn.Parameter(torch.tensor(100.0).log(), requires_grad=False)

    def is_frozen(self) -> bool:
        """True when this model computes exactly the frozen backbone's features: no adapter, or alpha 0
        with the identity shortcut."""
        return self.adapter is None or (self.alpha == 0 and self.adapter.config.out_dim == self.adapter.config.in_dim)

    @property
    def eval_transform(self):
        return self.backbone.eval_transform

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.backbone.tokenize(texts)

    def adapt(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Apply the adapter at this model's alpha to raw encoder features."""
        if self.adapter is not None:
            features = self.adapter(features.to(self.backbone.device), alpha=self.alpha)
        return F.normalize(features, dim=-1) if normalize else features

    @torch.no_grad()
    def adapted(self, raw: torch.Tensor) -> torch.Tensor:
        """Normalised adapted features of cached raw features, on the CPU (for evaluation)."""
        return self.adapt(raw, normalize=True).cpu()

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Adapted image features from pixels in [0, 1]."""
        return self.adapt(self.backbone.encode_image(pixels), normalize)

    def encode_text(self, texts: Sequence[str] | torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Adapted text features from strings or token ids."""
        return self.adapt(self.backbone.encode_text(texts), normalize)

    def encode_text_with_noise(self, texts: Sequence[str] | torch.Tensor, n_tokens: int = NOISE_TOKENS,
                               std: float = NOISE_STD, position: NoisePosition = "random",
                               generator: torch.Generator | None = None, normalize: bool = False) -> torch.Tensor:
        """Adapted features of texts with Gaussian token embeddings inserted (the method's IGN / ZS(NC))."""
        raw = self.backbone.encode_text_with_noise(texts, n_tokens, std, position, generator)
        return self.adapt(raw, normalize)

    @torch.no_grad()
    def prompt_features(self, classnames: Sequence[str], templates: Sequence[str] = ("{}",),
                        batch_size: int = 256) -> torch.Tensor:
        """Normalised features [C, T, D] of every class in every template."""
        if not classnames:
            raise ClapError("zero-shot classifier needs at least one class name")
        check_templates(templates)
        texts = [format_template(t, c) for c in classnames for t in templates]
        feats = torch.cat([self.encode_text(texts[i:i + batch_size], normalize=True)
                           for i in range(0, len(texts), batch_size)])
        return feats.view(len(classnames), len(templates), -1)

    def zero_shot_classifier(self, classnames: Sequence[str], templates: Sequence[str] = ("{}",),
                             batch_size: int = 256) -> torch.Tensor:
        """Class weights [D, C]: per class, the renormalised mean of its normalised template features."""
        feats = self.prompt_features(classnames, templates, batch_size).mean(dim=1)
        return F.normalize(feats, dim=-1).T.contiguous()
