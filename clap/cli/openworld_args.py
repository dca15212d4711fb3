"""Options of the open-world tasks (`clap eval ood`, `clap eval openness`, REPE) and REPE's default caption
corpus on the embedded world (the rest is resolved by `clap.evaluation.openworld`)."""

from __future__ import annotations

import argparse

from clap.options import NAME, PATH, POSITIVE, PROBABILITY, Count

WORLD_CAPTIONS_PER_CLASS = 30
WORLD_CAPTIONS_SEED = 11  # a seed no demo render uses


def add_openworld_arguments(p: argparse.ArgumentParser) -> None:
    from clap.defaults import ADVERSARIAL_RULES, CLIPN_TEMPLATE_SETS, OPENNESS_ORDERS, REPE_K, REPE_WEIGHT

    ood = p.add_argument_group("ood (OOD detection)")
    source = ood.add_mutually_exclusive_group()
    source.add_argument("--ood", type=PATH, default=None, help="folder of OOD images, any layout")
    source.add_argument("--ood-classes", nargs="+", type=NAME, default=None,
                        help="classes of --dataset held out as OOD (default on the world: the last shape of "
                             "each family)")
    ood.add_argument("--merge", type=PATH, default=None, metavar="JSON",
                     help="class groups scored as one class by the max-logit ensemble ({name: [class, ...]})")
    ood.add_argument("--ood-prompts", nargs="+", type=NAME, default=None, metavar="CONCEPT",
                     help="VL4AD's outlier concepts appended to the classes (score OODPrompts: the best ID class's "
                          "softmax probability over classes and concepts)")
    ood.add_argument("--clipn-templates", choices=CLIPN_TEMPLATE_SETS, default="authors",
                     help="what CLIPN sums its yes and no class features over: its authors' 128 templates, the "
                          "max-logit ensemble's 16, or the PC template alone")
    ood.add_argument("--mcm-temperature", type=POSITIVE, default=1.0, help="MCM's softmax temperature T'")
    openness = p.add_argument_group("openness (vocabulary extension)")
    openness.add_argument("--groups", type=PATH, default=None, metavar="JSON",
                          help="vocabularies {name: [class, ...]} (default: the world's 8 shape families; "
                               "random groups of --group-size otherwise)")
    openness.add_argument("--group-size", type=Count(), default=5, help="classes per random vocabulary")
    openness.add_argument("--orders", type=Count(), default=OPENNESS_ORDERS, help="random orders per target")
    openness.add_argument("--adversarial-rule", choices=ADVERSARIAL_RULES, default="greedy",
                          help="how the 3 adversarial non-target classes of each target vocabulary are chosen: "
                               "greedy (one at a time, the most harmful each) or ranked (each scored alone, the "
                               "authors' adv_vocab_mining)")
    repe = p.add_argument_group("REPE (zeroshot, ood, openness)")
    repe.add_argument("--repe", action="store_true", help="also report the tasks with REPE-enhanced class features")
    repe.add_argument("--captions", type=PATH, default=None,
                      help="caption corpus: captions.jsonl of a world captions render, or one caption per line "
                           "(default on the world: its caption generator)")
    repe.add_argument("--repe-weight", type=PROBABILITY, default=REPE_WEIGHT, help="mixing weight w")
    repe.add_argument("--repe-k", type=Count(), default=REPE_K, help="captions averaged per class")


def world_captions(dataset: str) -> list[str] | None:
    """REPE's default corpus: the world's caption generator when `dataset` holds the world's classes."""
    from clap.data.domains import scan_domain_dataset
    from clap.evaluation.openworld import is_world

    if not is_world(scan_domain_dataset(dataset).classes):
        return None
    from clap.data_gen.world.export import caption_corpus

    return caption_corpus(WORLD_CAPTIONS_PER_CLASS, WORLD_CAPTIONS_SEED)
