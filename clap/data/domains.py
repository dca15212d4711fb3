"""Domain-generalisation datasets laid out as root/domain/class/image (PACS, VLCS, ...)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from clap.errors import ClapError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def class_name_from_folder(folder: str) -> str:
    """The method's class-name rule: underscores to spaces, lower case."""
    return folder.replace("_", " ").strip().lower()


@dataclass
class DomainDataset:
    """Image paths with their domain and class indices."""

    root: Path
    domains: list[str]
    classes: list[str]
    samples: list[tuple[Path, int, int]] = field(default_factory=list)

    def domain_samples(self, domain: str) -> list[tuple[Path, int]]:
        """(path, class index) of one domain."""
        d = self.domains.index(domain)
        return [(p, c) for p, dom, c in self.samples if dom == d]


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_domain_dataset(root: str | Path) -> DomainDataset:
    """Index root/domain/class/image; classes are the union of class folders over domains."""
    root = Path(root)
    if not root.is_dir():
        raise ClapError(f"dataset folder {root} does not exist or is not a folder")
    domains = _subfolders(root)
    if not domains:
        raise ClapError(f"{root} has no domain folders; expected root/domain/class/image")
    class_folders = sorted({c.name for d in domains for c in _subfolders(d)})
    if not class_folders:
        raise ClapError(f"{root} has no class folders; expected root/domain/class/image")
    classes = [class_name_from_folder(c) for c in class_folders]
    if len(set(classes)) != len(classes):
        raise ClapError(f"{root}: class folders collide after normalisation (underscores, case): {class_folders}")
    dataset = DomainDataset(root, [d.name for d in domains], classes)
    for di, domain in enumerate(domains):
        for ci, cls in enumerate(class_folders):
            folder = domain / cls
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                dataset.samples.extend((p, di, ci) for p in files)
    if not dataset.samples:
        raise ClapError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return dataset


def scan_image_folder(root: str | Path, name: str = "images") -> DomainDataset:
    """Every image under `root`, any layout, as one domain and one class (`name`): an OOD set."""
    root = Path(root)
    if not root.is_dir():
        raise ClapError(f"image folder {root} does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ClapError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return DomainDataset(root, [name], [name], [(p, 0, 0) for p in files])


def load_image(path: Path) -> Image.Image | None:
    """The image as RGB (grayscale, CMYK, palette and alpha converted), or None when unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        logger.warning("skipping unreadable image %s: %s", path, e)
        return None


def read_attributes(root: str | Path) -> dict[str, dict]:
    """{relative image path: its row} from a dataset's attributes.jsonl (the world's renders write one), or {}."""
    manifest = Path(root) / "attributes.jsonl"
    if not manifest.is_file():
        return {}
    rows = (json.loads(line) for line in manifest.read_text().splitlines() if line.strip())
    return {row["path"]: row for row in rows}
