"""clap: CLAP content-disentanglement adapters on top of frozen CLIP-like models."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_backbone": "clap.backbones.loading",
    "Backbone": "clap.backbones.base",
    "BackboneIdentity": "clap.backbones.base",
    "Disentangler": "clap.adapter.disentangler",
    "AdapterConfig": "clap.adapter.config",
    "convert_reference": "clap.adapter.reference",
    "CLAPModel": "clap.model",
    "ClapError": "clap.errors",
    "train_adapter": "clap.training.run",
    "select_alpha": "clap.evaluation.protocols.alpha",
    "evaluate": "clap.evaluation.pipeline.evaluate",
    "Report": "clap.evaluation.pipeline.evaluate",
    "EvalOptions": "clap.evaluation.pipeline.tasks",
    "merge_shards": "clap.evaluation.pipeline.shards",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `clap --help` and light tools do not pay for torch.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clap' has no attribute {name!r}")
