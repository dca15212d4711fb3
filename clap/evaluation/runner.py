"""Run evaluation protocols for CLIP and adapted models on a domain dataset, sharing frozen features."""

from __future__ import annotations

import json
import logging
import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clap.adapter.disentangler import Disentangler
from clap.backbones.base import Backbone
from clap.data.domains import DomainDataset, load_image, scan_domain_dataset
from clap.data.fewshot import pick_per_class
from clap.errors import ClapError
from clap.evaluation import adversarial, fewshot, zeroshot
from clap.evaluation.alpha import zero_shot_by_alpha
from clap.evaluation.disentangle import factor_measures
from clap.evaluation.features import DomainFeatures, domain_features
from clap.evaluation.plots import plot_alpha
from clap.evaluation.probe import fit_probe
from clap.evaluation.stats import SEED_MEMBER, member_name
from clap.model import CLAPModel, check_compatible

logger = logging.getLogger(__name__)
BASELINE = "CLIP"


@dataclass(frozen=True)
class AdapterSpec:
    """NAME=PATH[@ALPHA|@auto] from the command line; ALPHA overrides the recorded inference alpha, 'auto'
    insists on the alpha chosen on validation data (`clap select-alpha`). A NAME given several times is
    one adapter trained with several seeds."""

    name: str
    path: str
    alpha: float | str | None = None

    @classmethod
    def parse(cls, text: str) -> "AdapterSpec":
        name, sep, rest = text.partition("=")
        if not sep or not name or not rest or "#" in name:
            raise ClapError(f"adapter '{text}' must look like NAME=PATH, NAME=PATH@ALPHA or NAME=PATH@auto "
                            "(no '#' in NAME)")
        path, at, alpha = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if alpha == "auto":
            return cls(name, path, "auto")
        try:
            value = float(alpha) if at else None
        except ValueError:
            raise ClapError(f"adapter '{text}': alpha '{alpha}' is not a number (or 'auto')") from None
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ClapError(f"adapter '{text}': alpha must be a finite number >= 0, got {alpha}")
        return cls(name, path, value)

    def inference_alpha(self, adapter: Disentangler) -> float | None:
        """The alpha to apply: given, chosen on validation data ('auto'), or None for the recorded one."""
        if self.alpha != "auto":
            return self.alpha
        if not adapter.config.alpha_selection:
            raise ClapError(f"adapter {self.path} has no alpha chosen on validation data; run "
                            f"`clap select-alpha {self.path} --val VALIDATION_DATA` first")
        return float(adapter.config.alpha_selection["alpha"])


@dataclass
class EvalSetup:
    """A dataset, its frozen raw features, and the models to compare (CLIP first)."""

    dataset: DomainDataset
    backbone: Backbone
    models: dict[str, CLAPModel]
    raw: dict[str, DomainFeatures]
    adapter_files: dict[str, dict] = dataclasses.field(default_factory=dict)
    per_image: dict[str, dict[str, dict[str, np.ndarray]]] = dataclasses.field(default_factory=dict)
    """{task: {model: {metric: per-image correctness over all domains}}}, for paired statistics."""
    negation: dict[str, Disentangler] = dataclasses.field(default_factory=dict)
    """CLIPN-route adapters: they score OOD images (CTW, ATD) and are no model of the other protocols."""
    ood_scores: dict[str, dict[str, dict[str, np.ndarray]]] = dataclasses.field(default_factory=dict)
    """{model: {score: {"id": scores, "ood": scores}}} of the OOD task (all domains), for AUROC intervals."""

    def describe(self) -> dict:
        models = {}
        for name, m in self.models.items():
            cfg = m.adapter.config if m.adapter is not None else None
            models[name] = {"alpha": m.alpha, "route": cfg.route if cfg else None,
                            "alpha_selection": cfg.alpha_selection if cfg else None,
                            "adapter_dims": [cfg.in_dim, cfg.latent_dim, cfg.out_dim] if cfg else None,
                            "training_seed": cfg.training.get("seed") if cfg else None,
                            **self.adapter_files.get(name, {"adapter": None})}
        for name, adapter in self.negation.items():
            cfg = adapter.config
            models[name] = {"route": cfg.route, "prompt_tokens": cfg.prompt_tokens, "training_seed":
                            cfg.training.get("seed"), **self.adapter_files[name]}
        return {"dataset": {"root": str(self.dataset.root), "domains": self.dataset.domains,
                            "classes": self.dataset.classes,
                            "images": {d: len(f.paths) for d, f in self.raw.items()},
                            "skipped": {d: len(f.skipped) for d, f in self.raw.items()}},
                "backbone": self.backbone.identity.to_dict(), "models": models}


def check_classes(dataset: DomainDataset, adapter: Disentangler, name: str) -> None:
    """The dataset's classes must be among those the adapter was trained for (when it records them)."""
    trained = set(adapter.config.classes)
    missing = [c for c in dataset.classes if c not in trained]
    if trained and missing:
        raise ClapError(f"adapter '{name}' was trained for {len(trained)} classes that do not include "
                        f"{missing[:5]}; evaluate it on its own dataset (or pass --ignore-classes)")


def build_setup(dataset_root: str | Path, adapters: Sequence[AdapterSpec] = (), backbone_options: dict | None = None,
                cache_dir: str | None = None, device: str = "cpu", ignore_classes: bool = False,
                progress: bool = True) -> EvalSetup:
    """Load everything once: dataset index, backbone (`load_backbone` keywords), adapters, raw image features."""
    from clap.backbones.loading import load_backbone

    dataset = scan_domain_dataset(dataset_root)
    backbone = load_backbone(**(backbone_options or {}), device=device)
    models, files, negation = {BASELINE: CLAPModel(backbone)}, {}, {}
    for name, spec in model_names(adapters):
        adapter = Disentangler.from_pretrained(spec.path)
        files[name] = adapter_file_info(spec.path)
        if adapter.config.route == "negation":
            check_compatible(backbone, adapter)
            negation[name] = adapter
            continue
        if not ignore_classes:
            check_classes(dataset, adapter, spec.name)
        models[name] = CLAPModel(backbone, adapter, spec.inference_alpha(adapter))
    raw = domain_features(backbone, dataset, cache_dir, progress=progress)
    return EvalSetup(dataset, backbone, models, raw, files, negation=negation)


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


def adapter_file_info(path: str) -> dict:
    """Where an adapter came from and the checksum of its weights file, for the report."""
    from clap.adapter.disentangler import WEIGHTS_NAME
    from clap.backbones.loading import file_checksum

    folder = Path(path).expanduser()
    weights = folder / WEIGHTS_NAME
    return {"adapter": str(folder.resolve()) if folder.is_dir() else path,
            "adapter_sha256": file_checksum(weights) if weights.is_file() else None}


def protocol_info(protocol: str) -> dict[str, str]:
    """The report's record of how few-shot probes are scored and what the attacks perturb."""
    return {"name": protocol, "fewshot_scoring": few_shot_scoring(protocol),
            "attack_inputs": "normalised tensors (the authors' code)" if protocol == "paper" else "pixels in [0, 1]"}


def run_zeroshot(setup: EvalSetup, repe: dict | None = None) -> dict:
    """Zero-shot rows per model; per-image results go to `setup.per_image["zeroshot"]` (without REPE; with
    `repe`, {model: `Repe`}, the class features are REPE-enhanced)."""
    out, hits = {}, {}
    for name, m in setup.models.items():
        parts: dict[str, list[np.ndarray]] = {}
        enhancer = repe[name] if repe is not None else None
        out[name] = zeroshot.evaluate_zero_shot(m, setup.raw, setup.dataset.classes, parts, enhancer)
        hits[name] = {form: np.concatenate(v) for form, v in parts.items()}
    if repe is None:
        setup.per_image["zeroshot"] = hits
    return out


def few_shot_scoring(protocol: str) -> str:
    """The paper protocol scores probes on the whole domain (shots included); ours on the held-out images."""
    return "whole-domain" if protocol == "paper" else "held-out"


def run_fewshot(setup: EvalSetup, shots: Sequence[int], seeds: Sequence[int], protocol: str = "pixel") -> dict:
    """Few-shot rows per model; per-image results (averaged over probe seeds) go to `setup.per_image["fewshot"]`."""
    scoring, out, hits = few_shot_scoring(protocol), {}, {}
    for name, m in setup.models.items():
        parts: dict[str, list[np.ndarray]] = {}
        out[name] = fewshot.evaluate_few_shot(m, setup.raw, shots, seeds, scoring, parts)
        hits[name] = {f"{k}-shot": np.concatenate(v) for k, v in parts.items()}
    setup.per_image["fewshot"] = hits
    return out


def _pixels(setup: EvalSetup, domain: str, candidates: np.ndarray, limit: int | None, seed: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    data = setup.raw[domain]
    keep = candidates[adversarial.subset(len(candidates), limit, seed)]
    tf = setup.backbone.eval_transform
    pixels = torch.stack([tf(load_image(data.paths[i])) for i in keep]).to(setup.backbone.device)
    return pixels, data.labels[torch.from_numpy(keep)].to(setup.backbone.device)


def run_adversarial(setup: EvalSetup, attacks: Sequence[str] = adversarial.ATTACKS,
                    epsilons: Sequence[float] = adversarial.EPS_SWEEP, protocol: str = "pixel",
                    max_images: int | None = 100, seed: int = 0) -> dict:
    """{model: {classifier: {domain|mean: {clean, FGSM: {eps: acc}, ...}}}} for the zero-shot C and the
    1-shot linear classifiers, at every eps of the sweep (8/255 is the paper's).

    Both classifiers are attacked on the same images: by default none of them is one of the 1-shot
    probe's training shots; the paper protocol draws from the whole domain. Per-image results go to
    `setup.per_image["adversarial"]`.
    """
    out: dict = {name: {head: {} for head in ADV_HEADS} for name in setup.models}
    hits: dict = {name: {} for name in setup.models}
    for domain in setup.dataset.domains:
        data = setup.raw[domain]
        shots = pick_per_class(data.labels.tolist(), 1, seed, salt=domain)
        candidates = fewshot.scored_positions(len(data.paths), shots, few_shot_scoring(protocol))
        if len(candidates) == 0:
            raise ClapError(f"domain {domain} has no image left to attack besides the 1-shot probe's shots; "
                            "give it at least two images per class")
        pixels, labels = _pixels(setup, domain, candidates, max_images, seed)
        for name, model in setup.models.items():
            for head_name, head in _attack_heads(setup, model, data, shots, seed).items():
                target = adversarial.AttackTarget(model, head, protocol)
                correct = adversarial.robust_correct(target, pixels, labels, attacks, epsilons, seed=seed)
                out[name][head_name][domain] = _nest_attacks(correct)
                for key, h in correct.items():
                    metric = key if key == "clean" else f"{key[0]}@{adversarial.eps_label(key[1])}"
                    hits[name].setdefault(f"{head_name}/{metric}", []).append(h)
    for per_model in out.values():
        for per_head in per_model.values():
            per_head["mean"] = _mean_tree([per_head[d] for d in setup.dataset.domains])
    setup.per_image["adversarial"] = {name: {k: np.concatenate(v) for k, v in m.items()} for name, m in hits.items()}
    return out


ADV_HEADS = ("zero-shot C", "1-shot linear")


def _attack_heads(setup: EvalSetup, model: CLAPModel, data: DomainFeatures, shots: list[int], seed: int) -> dict:
    """The two attacked classifiers: zero-shot ZS(C) weights and the 1-shot logistic probe."""
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    feats = model.adapted(data.features).numpy()
    probe = fit_probe(feats[shots], data.labels.numpy()[shots], seed)
    return {"zero-shot C": adversarial.zero_shot_head(weights), "1-shot linear": adversarial.linear_head(probe)}


def _nest_attacks(correct: dict) -> dict:
    """{'clean': acc, attack: {eps label: acc}} from robust_correct's per-image arrays."""
    row: dict = {"clean": float(correct["clean"].mean())}
    for key, h in correct.items():
        if key != "clean":
            row.setdefault(key[0], {})[adversarial.eps_label(key[1])] = float(h.mean())
    return row


def _mean_tree(rows: list[dict]) -> dict:
    """Leaf-wise mean of dicts with the same nested keys."""
    return {k: _mean_tree([r[k] for r in rows]) if isinstance(rows[0][k], dict)
            else float(np.mean([r[k] for r in rows])) for k in rows[0]}


def dataset_factors(setup: EvalSetup) -> tuple[torch.Tensor, dict[str, list[str]]]:
    """All raw features and the factor values of each image: class, domain, and recorded attributes."""
    feats, factors = [], {"class_name": [], "domain": []}
    attributes = _attribute_records(setup.dataset.root)
    for domain, data in setup.raw.items():
        feats.append(data.features)
        factors["class_name"] += [setup.dataset.classes[i] for i in data.labels.tolist()]
        factors["domain"] += [domain] * len(data.paths)
        for path in data.paths:
            record = attributes.get(path.relative_to(setup.dataset.root).as_posix(), {})
            for key in ("colour", "size", "image_type", "art_style"):
                if key in record:
                    factors.setdefault(key, []).append(record[key])
    n = sum(len(d.paths) for d in setup.raw.values())
    factors = {k: v for k, v in factors.items() if len(v) == n}
    if "image_type" in factors:  # the world's domains are its image types: one factor, one name
        factors.pop("domain")
    return torch.cat(feats), factors


def _attribute_records(root: Path) -> dict[str, dict]:
    manifest = root / "attributes.jsonl"
    if not manifest.is_file():
        return {}
    rows = (json.loads(line) for line in manifest.read_text().splitlines() if line.strip())
    return {row["path"]: row for row in rows}


def run_probe(setup: EvalSetup, seed: int = 0) -> dict:
    """Disentanglement measures per model and factor."""
    raw, factors = dataset_factors(setup)
    return {name: factor_measures(m, raw, factors, seed) for name, m in setup.models.items()}


def run_tsne(setup: EvalSetup, out_dir: str | Path, seed: int = 0) -> dict[str, str]:
    from clap.evaluation.tsne import plot_tsne

    paths = {}
    for name, m in setup.models.items():
        if SEED_MEMBER.match(name) and not name.endswith("#1"):
            continue  # one seed of each repeated adapter shows the picture
        target = Path(out_dir) / f"tsne_{name.replace(' ', '_').replace('.', '')}.png"
        paths[name] = str(plot_tsne(m, setup.raw, setup.dataset.classes, f"t-SNE of {name} image features", target,
                                    seed))
    return paths


def run_alpha(setup: EvalSetup, alphas: Sequence[float], out_dir: str | Path | None = None) -> dict:
    """Mean zero-shot accuracy per prompt form against alpha, for each adapted model (+ a PNG)."""
    sweep = {}
    for name, m in setup.models.items():
        if m.adapter is None:
            continue
        rows = zero_shot_by_alpha(m, setup.raw, setup.dataset.classes, alphas)
        sweep[name] = {f"{alpha:g}": row for alpha, row in rows.items()}
    if out_dir is not None and sweep:
        chosen = {name: m.adapter.config.alpha_selection["alpha"] for name, m in setup.models.items()
                  if m.adapter is not None and m.adapter.config.alpha_selection}
        sweep["plot"] = str(plot_alpha(sweep, chosen, Path(out_dir) / "alpha_sweep.png"))
    return sweep
