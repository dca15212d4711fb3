"""The inputs of the open-world tasks, resolved from `EvalOptions` and the dataset: the OOD split, the
class groups merged by the max-logit ensemble, the openness vocabularies and REPE's caption corpus (with
their defaults on the embedded world)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clap.errors import ClapError

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup
    from clap.evaluation.pipeline.tasks import EvalOptions


def is_world(classes: list[str]) -> bool:
    from clap.prompts.classes import preset_classes

    return set(classes) == set(preset_classes("world"))


def ood_sets(setup: EvalSetup, options: EvalOptions) -> tuple[dict, dict, list[str]]:
    """(ID features per domain, OOD features per domain or one shared set, ID classes)."""
    from clap.evaluation.protocols.ood import held_out_split

    classes = setup.dataset.classes
    if options.ood:
        check_ood_folder(setup, options.ood)
        id_sets = {d: data.features for d, data in setup.raw.items()}
        return id_sets, {"ood": _ood_folder_features(setup, options)}, list(classes)
    held = options.ood_classes
    if held is None:
        if not is_world(classes):
            raise ClapError("give OOD images (`ood`: a folder) or classes of the dataset to hold out (`ood_classes`)")
        from clap.prompts.classes import world_held_out

        held = world_held_out()
    unknown = [c for c in held if c not in classes]
    if unknown or len(set(held)) >= len(classes):
        raise ClapError(f"`ood_classes`: {unknown[:5] or held} must be classes of the dataset, leaving some ID classes")
    return held_out_split(setup.raw, classes, list(held))


def check_ood_folder(setup: EvalSetup, folder: str) -> None:
    """The OOD folder must not overlap the ID dataset nor hold folders named like its classes."""
    from clap.data.domains import class_name_from_folder

    ood, root = Path(folder).resolve(), Path(setup.dataset.root).resolve()
    if ood == root or root in ood.parents or ood in root.parents:
        raise ClapError(f"`ood` {folder} overlaps the dataset {setup.dataset.root}; give a separate folder")
    named = {class_name_from_folder(p.name) for p in ood.rglob("*") if p.is_dir()} & set(setup.dataset.classes)
    if named:
        raise ClapError(f"`ood` {folder} has folders named like ID classes ({sorted(named)[:3]}); OOD images must "
                        "come from other classes")


def _ood_folder_features(setup: EvalSetup, options: EvalOptions):
    from clap.data.domains import scan_image_folder
    from clap.evaluation.inputs.features import domain_features

    dataset = scan_image_folder(options.ood, "ood")
    return domain_features(setup.backbone, dataset, options.cache, progress=options.progress)["ood"].features


def merge_groups(options: EvalOptions, id_classes: list[str]) -> tuple[tuple[str, ...], ...] | None:
    if not options.merge:
        return None
    from clap.evaluation.protocols.openness import check_groups, read_groups

    groups = read_groups(options.merge)
    check_groups(groups, id_classes, "--merge", cover=False)
    return tuple(tuple(g) for g in groups)


def openness_groups(setup: EvalSetup, options: EvalOptions) -> list[list[int]]:
    """Class indices of each vocabulary: --groups, the world's families, or seeded random groups."""
    from clap.evaluation.protocols.openness import check_groups, random_groups, read_groups
    from clap.prompts.classes import preset_groups

    classes = setup.dataset.classes
    if options.groups:
        return check_groups(read_groups(options.groups), classes)
    if is_world(classes):
        return check_groups(list(preset_groups("world").values()), classes)
    if options.group_size >= len(classes):
        raise ClapError(f"group_size {options.group_size} puts all {len(classes)} classes in one vocabulary; openness "
                        f"grows the vocabulary group by group: give a group_size below {len(classes)}")
    return random_groups(len(classes), options.group_size, options.seed)


def repe_captions(options: EvalOptions) -> list[str] | None:
    """The caption corpus when REPE is on: a file (one caption per line, or a captions.jsonl) or the captions
    themselves (the CLI gives the world's caption generator on the world)."""
    if not options.repe:
        return None
    if options.captions is None:
        raise ClapError("`repe` needs a caption corpus: `captions` (a file with one caption per line, or a "
                        "captions.jsonl)")
    if isinstance(options.captions, (str, Path)):
        from clap.evaluation.protocols.repe import read_captions

        return read_captions(options.captions)
    return list(options.captions)
