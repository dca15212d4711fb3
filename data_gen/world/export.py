"""Write rendered worlds to disk in the layouts the rest of the package reads.

- domains:     root/<image type>/<class>/<n>.png       (a PACS-shaped domain dataset, for evaluation)
- captions:    root/images/<n>.png + captions.jsonl      (image-caption pairs with the web-like style
               priors of `priors.StylePriors`, for pretraining; the other layouts are style-balanced)
- image-route: root/<class>/<prompt>/<n>.png            (the layout of the SD generator, for Im.Aug)
- prompts:     root/<class>/<prompt>/<n>.png            (the same layout, one image per attribute prompt:
               each of the 480 template prompts of a class rendered with its colour, size, image type and
               art style, as the paper synthesises Im.Aug's data; `images_per_class` of a class's prompts,
               a fixed subset when fewer than all)

Each layout writes world.json (what was asked) and a JSONL manifest with every image's attributes.
Writes are atomic and existing images are kept, so an interrupted render resumes; a folder that
holds a different render is refused rather than mixed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from clap.errors import ClapError
from clap.fileio import claim_output_folder, folder_lock, folder_name, save_image_atomic, write_text_atomic
from clap.data_gen.world.captions import caption
from clap.data_gen.world.priors import StylePriors
from clap.data_gen.world.render import WorldAttributes, WorldSpec, image_rng, render_image

PROMPT_SUBSET_SEED = 0  # which prompts a prompts render with fewer than all of them takes
LAYOUTS = ("domains", "captions", "image-route", "prompts")
WORLD_FILE = "world.json"
MANIFESTS = {"domains": "attributes.jsonl", "captions": "captions.jsonl", "image-route": "manifest.jsonl",
             "prompts": "manifest.jsonl"}


@dataclass(frozen=True)
class Item:
    """One image to render: where it goes and how it is drawn."""

    relpath: str
    index: int
    fixed: dict[str, str]


def _domain_items(spec: WorldSpec, per_class: int) -> Iterator[Item]:
    for d, itype in enumerate(spec.image_types):
        for c, name in enumerate(spec.classes):
            for k in range(per_class):
                index = (d * len(spec.classes) + c) * per_class + k
                yield Item(f"{folder_name(itype)}/{folder_name(name)}/{k:05d}.png", index,
                           {"image_type": itype, "class_name": name})


def _caption_items(spec: WorldSpec, per_class: int) -> Iterator[Item]:
    for c, name in enumerate(spec.classes):
        for k in range(per_class):
            index = c * per_class + k
            yield Item(f"images/{index:06d}.png", index, {"class_name": name})


def _render_items(root: Path, spec: WorldSpec, seed: int, items: list[Item],
                  record: Callable[[WorldAttributes, np.random.Generator], dict],
                  relpath: Callable[[Item, WorldAttributes], str], priors: StylePriors | None,
                  progress: bool) -> list[dict]:
    rows = []
    for item in tqdm(items, desc=f"rendering {root.name}", unit="img", disable=not progress):
        rng = image_rng(seed, item.index)
        attrs = spec.sample(rng, priors, **item.fixed)
        row = {"path": relpath(item, attrs), **attrs.to_dict(), "index": item.index}
        row.update(record(attrs, np.random.default_rng([seed, item.index, 1])))
        target = root / row["path"]
        if not target.is_file():  # resuming: images already written are kept as they are
            save_image_atomic(Image.fromarray(render_image(attrs, rng, spec.image_size)), target)
        rows.append(row)
    return rows


def render_world(out: str | Path, layout: str, images_per_class: int, seed: int,
                 spec: WorldSpec | None = None, progress: bool = True) -> Path:
    """Render one layout of the world into `out`; returns the manifest path."""
    if layout not in LAYOUTS:
        raise ClapError(f"unknown layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    if images_per_class < 1:
        raise ClapError(f"images per class must be at least 1, got {images_per_class}")
    spec = spec or WorldSpec()
    root = Path(out)
    priors = StylePriors() if layout == "captions" else None
    request = {"layout": layout, "images_per_class": images_per_class, "seed": seed,
               "spec": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()},
               "style_priors": dataclasses.asdict(priors) if priors else None}
    items, record, relpath = _LAYOUT_PARTS[layout]
    planned = list(items(spec, images_per_class))  # a request the layout cannot meet fails before any write
    with folder_lock(root, "a world render"):  # a second writer of the same render is refused, not interleaved
        claim_output_folder(root, WORLD_FILE, request, "world render")
        rows = _render_items(root, spec, seed, planned, record, relpath, priors, progress)
        manifest = root / MANIFESTS[layout]
        write_text_atomic(manifest, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return manifest


def caption_corpus(per_class: int = 30, seed: int = 11, spec: WorldSpec | None = None) -> list[str]:
    """The captions a captions-layout render with this seed would write, without rendering the images: a
    caption corpus for REPE."""
    spec, priors = spec or WorldSpec(), StylePriors()
    out = []
    for item in _caption_items(spec, per_class):
        attrs = spec.sample(image_rng(seed, item.index), priors, **item.fixed)
        out.append(caption(attrs, np.random.default_rng([seed, item.index, 1])))
    return out


def prompt_attributes(spec: WorldSpec) -> list[dict[str, str]]:
    """Every attribute prompt's style values, in the templates' order (colour, size, image type, art style)."""
    return [{"colour": c, "size": s, "image_type": t, "art_style": a}
            for c, s, t, a in itertools.product(spec.colours, spec.sizes, spec.image_types, spec.art_styles)]


def _prompt_items(spec: WorldSpec, per_class: int) -> Iterator[Item]:
    combos = prompt_attributes(spec)
    if per_class > len(combos):
        raise ClapError(f"the prompts layout has {len(combos)} prompts a class; ask for at most that many images")
    chosen = sorted(np.random.default_rng(PROMPT_SUBSET_SEED).permutation(len(combos))[:per_class])
    for c, name in enumerate(spec.classes):
        for k in chosen:
            yield Item("", c * len(combos) + int(k), {"class_name": name, **combos[k]})


def _image_route_path(item: Item, attrs: WorldAttributes) -> str:
    prompt = attrs.prompt().text()
    return f"{folder_name(attrs.class_name)}/{folder_name(prompt)}/{item.index:06d}.png"


def _item_path(item: Item, attrs: WorldAttributes) -> str:
    return item.relpath


_LAYOUT_PARTS = {
    "domains": (_domain_items, lambda attrs, rng: {}, _item_path),
    "captions": (_caption_items, lambda attrs, rng: {"caption": caption(attrs, rng)}, _item_path),
    "image-route": (_caption_items, lambda attrs, rng: {"prompt": attrs.prompt().text()}, _image_route_path),
    "prompts": (_prompt_items, lambda attrs, rng: {"prompt": attrs.prompt().text()}, _image_route_path),
}


WORLD_CAPTIONS_PER_CLASS = 30
WORLD_CAPTIONS_SEED = 11  # a seed no demo render uses


def world_captions(dataset: str) -> list[str] | None:
    """REPE's default corpus: the world's caption generator when `dataset` holds the world's classes."""
    from clap.data.domains import scan_domain_dataset
    from clap.evaluation.pipeline.openworld import is_world

    if not is_world(scan_domain_dataset(dataset).classes):
        return None
    return caption_corpus(WORLD_CAPTIONS_PER_CLASS, WORLD_CAPTIONS_SEED)
