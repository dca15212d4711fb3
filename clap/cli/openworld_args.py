"""Options of the open-world tasks (`clap eval ood`, `clap eval openness`, REPE) and their defaults on the
embedded world: the OOD split, the vocabularies, the caption corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from clap.errors import ClapError
from clap.options import NAME, PATH, POSITIVE, PROBABILITY, Count

WORLD_CAPTIONS_PER_CLASS = 30
WORLD_CAPTIONS_SEED = 11  # a seed no demo render uses


def add_openworld_arguments(p: argparse.ArgumentParser) -> None:
    from clap.evaluation.openness import OPENNESS_ORDERS
    from clap.evaluation.repe import REPE_K, REPE_WEIGHT

    ood = p.add_argument_group("ood (OOD detection)")
    source = ood.add_mutually_exclusive_group()
    source.add_argument("--ood", type=PATH, default=None, help="folder of OOD images, any layout")
    source.add_argument("--ood-classes", nargs="+", type=NAME, default=None,
                        help="classes of --dataset held out as OOD (default on the world: the last shape of "
                             "each family)")
    ood.add_argument("--merge", type=PATH, default=None, metavar="JSON",
                     help="class groups scored as one class by the max-logit ensemble ({name: [class, ...]})")
    ood.add_argument("--mcm-temperature", type=POSITIVE, default=1.0, help="MCM's softmax temperature T'")
    openness = p.add_argument_group("openness (vocabulary extension)")
    openness.add_argument("--groups", type=PATH, default=None, metavar="JSON",
                          help="vocabularies {name: [class, ...]} (default: the world's 8 shape families; "
                               "random groups of --group-size otherwise)")
    openness.add_argument("--group-size", type=Count(), default=5, help="classes per random vocabulary")
    openness.add_argument("--orders", type=Count(), default=OPENNESS_ORDERS, help="random orders per target")
    repe = p.add_argument_group("REPE (zeroshot, ood, openness)")
    repe.add_argument("--repe", action="store_true", help="also report the tasks with REPE-enhanced class features")
    repe.add_argument("--captions", type=PATH, default=None,
                      help="caption corpus: captions.jsonl of a world captions render, or one caption per line "
                           "(default on the world: its caption generator)")
    repe.add_argument("--repe-weight", type=PROBABILITY, default=REPE_WEIGHT, help="mixing weight w")
    repe.add_argument("--repe-k", type=Count(), default=REPE_K, help="captions averaged per class")


def is_world(classes: list[str]) -> bool:
    from clap.prompts.classes import preset_classes

    return set(classes) == set(preset_classes("world"))


def ood_sets(setup, args: argparse.Namespace) -> tuple[dict, dict, list[str]]:
    """(ID features per domain, OOD features per domain or one shared set, ID classes)."""
    from clap.evaluation.ood import held_out_split

    classes = setup.dataset.classes
    if args.ood:
        check_ood_folder(setup, args.ood)
        id_sets = {d: data.features for d, data in setup.raw.items()}
        return id_sets, {"ood": _ood_folder_features(setup, args)}, list(classes)
    held = args.ood_classes
    if held is None:
        if not is_world(classes):
            raise ClapError("give OOD images with --ood ROOT or hold out classes with --ood-classes C1 C2 ...")
        from clap.prompts.classes import world_held_out

        held = world_held_out()
    unknown = [c for c in held if c not in classes]
    if unknown or len(set(held)) >= len(classes):
        raise ClapError(f"--ood-classes: {unknown[:5] or held} must be classes of --dataset, leaving some ID classes")
    return held_out_split(setup.raw, classes, held)


def check_ood_folder(setup, folder: str) -> None:
    """The OOD folder must not overlap the ID dataset nor hold folders named like its classes."""
    from clap.data.domains import class_name_from_folder

    ood, root = Path(folder).resolve(), Path(setup.dataset.root).resolve()
    if ood == root or root in ood.parents or ood in root.parents:
        raise ClapError(f"--ood {folder} overlaps --dataset {setup.dataset.root}; give a separate folder")
    named = {class_name_from_folder(p.name) for p in ood.rglob("*") if p.is_dir()} & set(setup.dataset.classes)
    if named:
        raise ClapError(f"--ood {folder} has folders named like ID classes ({sorted(named)[:3]}); OOD images must "
                        "come from other classes")


def _ood_folder_features(setup, args: argparse.Namespace):
    from clap.data.domains import scan_image_folder
    from clap.evaluation.features import domain_features

    dataset = scan_image_folder(args.ood, "ood")
    return domain_features(setup.backbone, dataset, args.cache, progress=not args.no_progress)["ood"].features


def merge_groups(args: argparse.Namespace, id_classes: list[str]) -> tuple[tuple[str, ...], ...] | None:
    if not args.merge:
        return None
    from clap.evaluation.openness import check_groups, read_groups

    groups = read_groups(args.merge)
    check_groups(groups, id_classes, "--merge", cover=False)
    return tuple(tuple(g) for g in groups)


def openness_groups(setup, args: argparse.Namespace) -> list[list[int]]:
    """Class indices of each vocabulary: --groups, the world's families, or seeded random groups."""
    from clap.evaluation.openness import check_groups, random_groups, read_groups
    from clap.prompts.classes import preset_groups

    classes = setup.dataset.classes
    if args.groups:
        return check_groups(read_groups(args.groups), classes)
    if is_world(classes):
        return check_groups(list(preset_groups("world").values()), classes)
    return random_groups(len(classes), args.group_size, args.seed)


def repe_captions(setup, args: argparse.Namespace) -> list[str] | None:
    """The caption corpus when --repe is on: --captions, or the world's caption generator on the world."""
    if not args.repe:
        return None
    from clap.evaluation.repe import read_captions

    if args.captions:
        return read_captions(args.captions)
    if not is_world(setup.dataset.classes):
        raise ClapError("--repe needs a caption corpus: --captions FILE (one caption per line, or a captions.jsonl)")
    from clap.data_gen.world.export import caption_corpus

    return caption_corpus(WORLD_CAPTIONS_PER_CLASS, WORLD_CAPTIONS_SEED)
