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
    files = {(d.name, c): _images(d / c) for d in domains for c in class_folders}
    empty_domains = [d.name for d in domains if not any(files[d.name, c] for c in class_folders)]
    empty_classes = [c for c in class_folders if not any(files[d.name, c] for d in domains)]
    if len(empty_domains) == len(domains):
        raise ClapError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for what, names in (("domain", empty_domains), ("class", empty_classes)):
        if names:
            logger.warning("skipping %d %s folder(s) without images: %s", len(names), what, ", ".join(names[:5]))
    domains = [d for d in domains if d.name not in empty_domains]
    class_folders = [c for c in class_folders if c not in empty_classes]
    classes = [class_name_from_folder(c) for c in class_folders]
    if len(set(classes)) != len(classes):
        raise ClapError(f"{root}: class folders collide after normalisation (underscores, case): {class_folders}")
    dataset = DomainDataset(root, [d.name for d in domains], classes)
    for di, domain in enumerate(domains):
        for ci, cls in enumerate(class_folders):
            dataset.samples.extend((p, di, ci) for p in files[domain.name, cls])
    return dataset


def _images(folder: Path) -> list[Path]:
    """The image files directly in `folder` (none when it is missing)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


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
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        logger.warning("skipping unreadable image %s: %s", path, e)
        return None


def read_attributes(root: str | Path) -> dict[str, dict]:
    """{relative image path: its row} from a dataset's attributes.jsonl (the world's renders write one), or {}."""
    manifest = Path(root) / "attributes.jsonl"
    if not manifest.is_file():
        return {}
    rows = (json.loads(line) for line in manifest.read_text().splitlines() if line.strip())
    return {row["path"]: row for row in rows}
