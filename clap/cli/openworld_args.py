"""REPE's default caption corpus on the embedded world (the open-world options are `EvalOptions` fields, resolved
by `clap.evaluation.openworld`)."""

from __future__ import annotations

WORLD_CAPTIONS_PER_CLASS = 30
WORLD_CAPTIONS_SEED = 11  # a seed no demo render uses


def world_captions(dataset: str) -> list[str] | None:
    """REPE's default corpus: the world's caption generator when `dataset` holds the world's classes."""
    from clap.data.domains import scan_domain_dataset
    from clap.evaluation.openworld import is_world

    if not is_world(scan_domain_dataset(dataset).classes):
        return None
    from clap.data_gen.world.export import caption_corpus

    return caption_corpus(WORLD_CAPTIONS_PER_CLASS, WORLD_CAPTIONS_SEED)
