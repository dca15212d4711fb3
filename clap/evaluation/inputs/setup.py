"""The setup every evaluation protocol shares: dataset index, backbone, models and their frozen features.

`build_setup` loads everything once; the protocols (`zeroshot.run_zeroshot`, `fewshot.run_fewshot`,
`attack_eval.run_adversarial`, `disentangle.run_probe`, `tsne.run_tsne`, `alpha.run_alpha`, `ood.ood_records`,
`openness.run_openness`) each take it and return their rows; `clap.evaluation.pipeline.tasks` holds the task table.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from clap.adapter.disentangler import Disentangler
from clap.backbones.base import Backbone
from clap.data.domains import DomainDataset, scan_domain_dataset
from clap.errors import ClapError
from clap.evaluation.inputs.features import DomainFeatures, domain_features
from clap.evaluation.inputs.shard import Shard
from clap.evaluation.statistics.stats import member_name
from clap.model import CLAPModel, check_compatible
from clap.options import ALPHA
from clap.runtime import release_freed_memory

BASELINE = "CLIP"


@dataclass(frozen=True)
class AdapterSpec:
    """NAME=PATH[@ALPHA|@auto] from the command line; ALPHA overrides the recorded inference alpha, 'auto'
    insists on the alpha chosen on validation data (`clap select-alpha`). A NAME given several times is
    one adapter trained with several seeds."""

    name: str
    path: str
    alpha: float | str | None = None
    adapter: Disentangler | None = field(default=None, compare=False, repr=False)  # an adapter held in memory

    @classmethod
    def parse(cls, text: str) -> "AdapterSpec":
        name, sep, rest = text.partition("=")
        if not sep or not name or not rest or "#" in name:
            raise ClapError(f"adapter '{text}' must look like NAME=PATH, NAME=PATH@ALPHA or NAME=PATH@auto "
                            "(no '#' in NAME)")
        path, at, alpha = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if alpha == "auto" or not at:
            return cls(name, path, "auto" if at else None)
        try:
            return cls(name, path, float(ALPHA.convert(alpha)))
        except ValueError as e:
            raise ClapError(f"adapter '{text}': alpha '{alpha}' is not {str(e).removeprefix('expected ')} "
                            "(or 'auto')") from None

    def inference_alpha(self, adapter: Disentangler) -> float | None:
        """The alpha to apply: given, chosen on validation data ('auto'), or None for the recorded one."""
        if self.alpha != "auto":
            return self.alpha
        if not adapter.config.alpha_selection:
            raise ClapError(f"adapter {self.path} has no alpha chosen on validation data; choose it first "
                            f"(clap.select_alpha, or `clap select-alpha {self.path} --val VALIDATION_DATA`)")
        return float(adapter.config.alpha_selection["alpha"])


@dataclass
class EvalSetup:
    """A dataset, its frozen raw features, and the models to compare (CLIP first)."""

    dataset: DomainDataset
    backbone: Backbone
    models: dict[str, CLAPModel]
    raw: dict[str, DomainFeatures]
    adapter_files: dict[str, dict] = dataclasses.field(default_factory=dict)
    negation: dict[str, Disentangler] = dataclasses.field(default_factory=dict)
    """CLIPN-route adapters: they score OOD images (CTW, ATD) and are no model of the other protocols."""
    all_domains: list[str] | None = None  # a shard's: the whole dataset's domains, in order

    def describe(self) -> dict:
        shard = {} if self.all_domains is None else {"all_domains": self.all_domains}
        return {"dataset": {"root": str(self.dataset.root), "domains": self.dataset.domains,
                            "classes": self.dataset.classes,
                            "images": {d: len(f.paths) for d, f in self.raw.items()},
                            "skipped": {d: len(f.skipped) for d, f in self.raw.items()}, **shard},
                **describe_models(self.backbone, self.models, self.adapter_files, self.negation)}


def describe_models(backbone: Backbone, models: dict[str, CLAPModel], files: dict[str, dict],
                    negation: dict[str, Disentangler]) -> dict:
    """The report's record of the backbone and of every model (alpha, route, adapter file and training data)."""
    out = {}
    for name, m in models.items():
        cfg = m.adapter.config if m.adapter is not None else None
        out[name] = {"alpha": m.alpha, "route": cfg.route if cfg else None,
                     "alpha_selection": cfg.alpha_selection if cfg else None,
                     "adapter_dims": [cfg.in_dim, cfg.latent_dim, cfg.out_dim] if cfg else None,
                     "training_seed": cfg.training.get("seed") if cfg else None, **files.get(name, {"adapter": None})}
    for name, adapter in negation.items():
        cfg = adapter.config
        out[name] = {"route": cfg.route, "prompt_tokens": cfg.prompt_tokens, "training_seed":
                     cfg.training.get("seed"), **files[name]}
    return {"backbone": {**backbone.identity.to_dict(), "device": str(backbone.device),
                         "precision": backbone.precision}, "models": out}


def check_classes(dataset: DomainDataset, adapter: Disentangler, name: str, unknown: Sequence[str] = ()) -> None:
    """The dataset's classes must be among those the adapter was trained for (when it records them), but for the
    `unknown` ones (an OOD test's held-out classes, which an open-set adapter must not have seen)."""
    trained = set(adapter.config.classes) | set(unknown)
    missing = [c for c in dataset.classes if c not in trained]
    if trained and missing:
        raise ClapError(f"adapter '{name}' was trained for {len(trained)} classes that do not include "
                        f"{missing[:5]}; evaluate it on its own dataset (or pass `ignore_classes`)")


def check_not_validated_on(root: Path, adapter: Disentangler, spec: AdapterSpec) -> None:
    """Refuse to evaluate an adapter at the alpha it chose on this very dataset (test labels read)."""
    validation = (adapter.config.alpha_selection or {}).get("validation")
    if validation and Path(validation).expanduser().resolve() == Path(root).expanduser().resolve():
        raise ClapError(f"adapter '{spec.name}' ({spec.path}) chose its alpha on {validation}, the dataset being "
                        "evaluated; choose it on a validation set (clap.select_alpha, or `clap select-alpha --val "
                        "OTHER`) or give the adapter an alpha (NAME=PATH@ALPHA)")


def build_setup(dataset_root: str | Path, adapters: Sequence[AdapterSpec] = (),
                backbone_options: Mapping | Backbone | None = None,
                cache_dir: str | None = None, device: str = "auto", ignore_classes: bool = False,
                progress: bool = True, test: bool = True, precision: str = "auto", unknown: Sequence[str] = (),
                shard: Shard | None = None) -> EvalSetup:
    """Load everything once: dataset index (a `shard`'s domains only), backbone (a `Backbone`, used where it is, or
    `load_backbone` keywords on `device` with its encoders' `precision`), adapters, raw image features. An adapter
    must have been trained for the dataset's classes but the `unknown`.
    With `test` (the dataset is a test set) an adapter at the alpha it chose on this very dataset is refused."""
    dataset = whole = scan_domain_dataset(dataset_root)
    if shard is not None:
        dataset = shard.of(whole)
    backbone = load_backbone_for(backbone_options, device, precision)

    def check(adapter: Disentangler, spec: AdapterSpec) -> None:
        if not ignore_classes:
            check_classes(dataset, adapter, spec.name, unknown)
        if test and spec.alpha in (None, "auto"):
            check_not_validated_on(dataset.root, adapter, spec)

    models, files, negation = load_models(backbone, adapters, check)
    raw = domain_features(backbone, dataset, cache_dir, progress=progress)
    release_freed_memory()  # the cache files read, the images decoded
    return EvalSetup(dataset, backbone, models, raw, files, negation=negation,
                     all_domains=None if shard is None else whole.domains)


def load_backbone_for(backbone: Mapping | Backbone | None, device: str, precision: str) -> Backbone:
    """A `Backbone` given, as it is; else `load_backbone`'s keywords (the embedded tiny CLIP by default) on
    `device` at `precision`."""
    from clap.backbones.loading import load_backbone

    if isinstance(backbone, Backbone):
        return backbone
    if backbone is None or isinstance(backbone, Mapping):
        return load_backbone(**(backbone or {}), device=device, precision=precision)
    raise ClapError(f"backbone must be a Backbone (clap.load_backbone()) or a mapping of load_backbone's keywords, "
                    f"got {type(backbone).__name__}")


def load_models(backbone: Backbone, adapters: Sequence[AdapterSpec], check=None
                ) -> tuple[dict[str, CLAPModel], dict[str, dict], dict[str, Disentangler]]:
    """CLIP and a model per adapter (`check(adapter, spec)` first), their files' record, and the negation (CLIPN)
    adapters apart (checked against the backbone)."""
    models, files, negation = {BASELINE: CLAPModel(backbone)}, {}, {}
    for name, spec in model_names(adapters):
        adapter = spec.adapter if spec.adapter is not None else Disentangler.from_pretrained(spec.path)
        files[name] = adapter_file_info(spec.path) if spec.adapter is None else IN_MEMORY_FILE
        if adapter.config.route == "negation":
            check_compatible(backbone, adapter)
            negation[name] = adapter
            continue
        if check is not None:
            check(adapter, spec)
        models[name] = CLAPModel(backbone, adapter, spec.inference_alpha(adapter))
    return models, files, negation


def model_names(adapters: Sequence[AdapterSpec]) -> list[tuple[str, AdapterSpec]]:
    """Each adapter's model name: its NAME, or NAME#k for the k-th seed of a NAME given several times."""
    counts = Counter(spec.name for spec in adapters)
    if counts[BASELINE]:
        raise ClapError(f"'{BASELINE}' names the plain backbone; give the adapter another name")
    seen: Counter = Counter()
    named = []
    for spec in adapters:
        seen[spec.name] += 1
        named.append((member_name(spec.name, seen[spec.name]) if counts[spec.name] > 1 else spec.name, spec))
    return named


IN_MEMORY = "(in memory)"
IN_MEMORY_FILE = {"adapter": IN_MEMORY, "adapter_sha256": None, "training_data": None}


def adapter_file_info(path: str) -> dict:
    """Where an adapter came from and the checksum of its weights file, for the report."""
    from clap.adapter.disentangler import WEIGHTS_NAME
    from clap.backbones.loading import file_checksum

    folder = Path(path).expanduser()
    weights = folder / WEIGHTS_NAME
    return {"adapter": str(folder.resolve()) if folder.is_dir() else path,
            "adapter_sha256": file_checksum(weights) if weights.is_file() else None,
            "training_data": training_data(folder)}


def training_data(folder: Path) -> dict | None:
    """What the adapter was trained on (route, how many images, prompts or pairs, from where), as its training
    run's `training_summary.json` records it; None for an adapter without one (e.g. converted)."""
    from clap.adapter.disentangler import SUMMARY_NAME

    try:
        return json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8")).get("training_data")
    except (OSError, ValueError, AttributeError):
        return None
