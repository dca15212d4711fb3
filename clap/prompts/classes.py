"""Class lists: from names, a text file, a dataset folder, or a built-in preset."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Sequence

from clap.data.domains import class_name_from_folder
from clap.errors import ClapError
from clap.options import check_names

PRESETS = ("pacs", "vlcs", "officehome", "domainnet", "world")


def preset_classes(name: str) -> list[str]:
    """Class names of a preset (presets/<name>.txt: PACS, VLCS, OfficeHome, DomainNet folders, the world)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in PRESETS:
        raise ClapError(f"unknown class preset '{name}'; choose from {', '.join(PRESETS)}")
    text = (resources.files("clap.prompts") / "presets" / f"{key}.txt").read_text(encoding="utf-8")
    return [class_name_from_folder(line) for line in text.splitlines() if line.strip()]


def preset_groups(name: str = "world") -> dict[str, list[str]]:
    """A preset's class vocabularies (presets/<name>_groups.json): the world's 8 shape families of 4."""
    text = (resources.files("clap.prompts") / "presets" / f"{name}_groups.json").read_text(encoding="utf-8")
    return json.loads(text)


def preset_concepts(name: str = "world") -> dict[str, list[str]]:
    """A preset's concepts per class (presets/<name>_concepts.json): each class's name with its article, its
    plural and a synonym or sub-concept, as VL4AD's max-logit prompt ensembles are built (the world's 32 shapes and
    the scenes' background). Written from the class names alone, before any result."""
    text = (resources.files("clap.prompts") / "presets" / f"{name}_concepts.json").read_text(encoding="utf-8")
    return json.loads(text)


def world_held_out() -> list[str]:
    """The world's default OOD classes: the last shape of each family (8 of 32, each near its family)."""
    return [members[-1] for members in preset_groups("world").values()]


def world_open_set() -> list[str]:
    """The world's in-distribution classes: every class but the held-out OOD shapes (`world_held_out`)."""
    held = set(world_held_out())
    return [c for members in preset_groups("world").values() for c in members if c not in held]


def folder_classes(root: str | Path) -> list[str]:
    """Class names of a root/domain/class/image dataset (union over domains)."""
    from clap.data.domains import scan_domain_dataset

    return scan_domain_dataset(root).classes


def file_classes(path: str | Path) -> list[str]:
    """One class name per line; blank lines and '#' comments ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ClapError(f"cannot read class list {path}: {e}") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def load_classes(source: str | Sequence[str]) -> list[str]:
    """Class names from a preset name, a text file, a dataset folder, or a list of names."""
    if isinstance(source, str):
        path = Path(source).expanduser()
        if path.is_dir():
            names = folder_classes(path)
        elif path.is_file():
            names = file_classes(path)
        elif source.lower().replace("-", "").replace("_", "") in PRESETS:
            names = preset_classes(source)
        else:
            raise ClapError(f"'{source}' is neither a preset ({', '.join(PRESETS)}), a class-list file nor "
                            "a dataset folder")
    else:
        names = [n.strip() if isinstance(n, str) else n for n in source]
    if not names:
        raise ClapError(f"the class list from {source!r} is empty; give at least one class name")
    return check_names("class list", names)
