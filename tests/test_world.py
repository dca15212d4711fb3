"""The rendered world: attributes, determinism, distinct styles, export layouts, resume, errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from clap.cli.main import main
from clap.errors import ClapError
from clap.data_gen.world.captions import HABIT_FORMS, CaptionMix, caption, phrasing_habit
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldAttributes, WorldSpec, render_arrays, render_image
from clap.data_gen.world.shapes import SHAPES
from clap.data_gen.world.styles import IMAGE_TYPES

SPEC = WorldSpec()


def test_world_covers_the_method_vocabulary():
    from clap.prompts.templates import AttributeVocab

    vocab = AttributeVocab.default()
    assert len(SHAPES) == 32 and len(set(SHAPES)) == 32
    assert (SPEC.colours, SPEC.sizes, SPEC.image_types, SPEC.art_styles) == (
        vocab.colour, vocab.size, vocab.image_type, vocab.art_style)
    assert set(IMAGE_TYPES) == set(vocab.image_type)


def test_same_seed_same_pixels_and_records():
    a, ra = render_arrays(SPEC, seed=3, n=20)
    b, rb = render_arrays(SPEC, seed=3, n=20)
    c, _ = render_arrays(SPEC, seed=4, n=20)
    assert np.array_equal(a, b) and ra == rb
    assert not np.array_equal(a, c)
    assert a.shape == (20, 64, 64, 3) and a.dtype == np.uint8


def test_image_i_does_not_depend_on_the_batch_it_is_rendered_in():
    whole, _ = render_arrays(SPEC, seed=5, n=10)
    tail, _ = render_arrays(SPEC, seed=5, n=4, start=6)
    assert np.array_equal(whole[6:], tail)


@pytest.mark.parametrize("itype", list(IMAGE_TYPES))
def test_every_image_type_and_style_renders(itype):
    rng = np.random.default_rng(0)
    for style in SPEC.art_styles:
        for colour in SPEC.colours:
            img = render_image(WorldAttributes("star", colour, "large", itype, style), rng)
            assert img.shape == (64, 64, 3) and img.std() > 5


def test_image_types_look_different():
    """Mean image statistics differ between types: a style that is actually rendered."""
    means = {}
    for itype in IMAGE_TYPES:
        imgs, _ = render_arrays(SPEC, seed=1, n=30, image_type=itype)
        means[itype] = np.array([imgs.mean(), imgs.std(), np.abs(np.diff(imgs.astype(float), axis=2)).mean()])
    names = list(means)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(means[a] - means[b]).max() > 1.0, (a, b)


def test_colour_is_visible_in_the_object():
    rng = np.random.default_rng(0)
    red = render_image(WorldAttributes("square", "red", "large", "clipart", "realistic"), rng).astype(int)
    blue = render_image(WorldAttributes("square", "blue", "large", "clipart", "realistic"), rng).astype(int)
    assert (red[..., 0] - red[..., 2] > 150).mean() > 0.2
    assert (blue[..., 2] - blue[..., 0] > 150).mean() > 0.2


def test_sizes_scale_the_object():
    areas = {}
    for size in SPEC.sizes:
        rng = np.random.default_rng(0)
        img = render_image(WorldAttributes("square", "black", size, "clipart", "realistic"), rng)
        areas[size] = (img.mean(axis=2) < 60).mean()
    assert areas["small"] < areas["normal sized"] < areas["large"]


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": ("dragon",)}, "unknown class 'dragon'"),
    ({"colours": ("teal",)}, "unknown colour 'teal'"),
    ({"image_types": ("photo",)}, "unknown image type 'photo'"),
    ({"image_size": 8}, "impossible"),
    ({"classes": ()}, "no classes"),
])
def test_bad_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldSpec(**kwargs)


def test_captions_mix_forms_and_always_name_the_class():
    rng = np.random.default_rng(0)
    attrs = WorldAttributes("hexagon", "orange", "small", "photograph", "impressionistic")
    texts = [caption(attrs, rng) for _ in range(400)]
    assert all("hexagon" in t for t in texts)
    assert "a photo of a hexagon" in texts and "hexagon" in texts
    assert "an impressionistic photograph of a small orange hexagon" in texts
    assert any(t.endswith("style") for t in texts)
    short = sum(len(t.split()) <= 5 for t in texts) / len(texts)
    assert 0.3 < short < 0.9  # a mix of short web captions and longer descriptions


def test_domains_layout(tmp_path):
    spec = WorldSpec(classes=("star", "ring"), image_types=("sketch", "mosaic art"))
    manifest = render_world(tmp_path, "domains", 3, seed=1, spec=spec, progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 2 * 2 * 3
    assert (tmp_path / "mosaic_art" / "star" / "00002.png").is_file()
    assert all(r["path"].split("/")[0] == r["image_type"].replace(" ", "_") for r in rows)
    assert all(r["path"].split("/")[1] == r["class_name"] for r in rows)


def test_captions_and_image_route_layouts(tmp_path):
    spec = WorldSpec(classes=("star", "ring"))
    caps = render_world(tmp_path / "c", "captions", 2, seed=1, spec=spec, progress=False)
    rows = [json.loads(line) for line in caps.read_text().splitlines()]
    assert len(rows) == 4 and all(r["class_name"] in r["caption"] for r in rows)
    route = render_world(tmp_path / "r", "image-route", 2, seed=1, spec=spec, progress=False)
    for row in (json.loads(line) for line in route.read_text().splitlines()):
        cls, prompt, _ = row["path"].split("/")
        assert cls == row["class_name"] and prompt == row["prompt"].replace(" ", "_")
        assert (tmp_path / "r" / row["path"]).is_file()


def test_prompts_layout_renders_one_image_per_template_prompt_with_its_attributes(tmp_path):
    """Im.Aug's data as the paper makes it: each of a class's 480 attribute prompts rendered once, with that
    prompt's colour, size, image type and art style (the stand-in for Stable Diffusion)."""
    from clap.prompts.templates import class_prompts

    spec = WorldSpec(classes=("star", "ring"))
    manifest = render_world(tmp_path / "p", "prompts", 480, seed=1, spec=spec, progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 960 and len({r["path"] for r in rows}) == 960
    for name in spec.classes:
        prompts = {p.text(): p for p in class_prompts(name)}
        mine = [r for r in rows if r["class_name"] == name]
        assert {r["prompt"] for r in mine} == set(prompts)
        for row in mine:
            parts = prompts[row["prompt"]]
            assert (row["colour"], row["size"], row["image_type"], row["art_style"]) == \
                (parts.colour, parts.size, parts.image_type, parts.art_style)
    subset = render_world(tmp_path / "s", "prompts", 24, seed=1, spec=spec, progress=False)
    few = [json.loads(line) for line in subset.read_text().splitlines()]
    assert len(few) == 48 and {r["path"] for r in few} <= {r["path"] for r in rows}  # the same images, fewer
    with pytest.raises(ClapError, match="480 prompts a class"):
        render_world(tmp_path / "x", "prompts", 481, seed=1, spec=spec, progress=False)
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_rerender_resumes_and_never_mixes(tmp_path):
    spec = WorldSpec(classes=("star",), image_types=("clipart",))
    render_world(tmp_path, "domains", 4, seed=2, spec=spec, progress=False)
    files = sorted((tmp_path / "clipart" / "star").iterdir())
    original = files[1].read_bytes()
    files[1].unlink()
    files[2].write_bytes(b"user edit kept")
    render_world(tmp_path, "domains", 4, seed=2, spec=spec, progress=False)
    assert files[1].read_bytes() == original
    assert files[2].read_bytes() == b"user edit kept"
    with pytest.raises(ClapError, match=r"different world render \(differs in seed"):
        render_world(tmp_path, "domains", 4, seed=3, spec=spec, progress=False)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_non_empty_foreign_folder_is_refused(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ClapError, match="not empty"):
        render_world(tmp_path, "domains", 1, seed=0, progress=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ClapError, match="cannot create output folder"):
        render_world(blocker / "sub", "domains", 1, seed=0, progress=False)


def test_cli_render_all_layouts(tmp_path, capsys):
    code = main(["world", "render", "--out", str(tmp_path), "--images-per-class", "1", "--seed", "7",
                 "--classes", "star", "heart", "--image-types", "sketch", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    for layout in ("domains", "captions", "image-route", "prompts"):
        assert f"{layout}: " in out and (tmp_path / layout / "world.json").is_file()
    assert sorted(p.name for p in (tmp_path / "domains" / "sketch").iterdir()) == ["heart", "star"]


def test_world_class_preset_lists_the_rendered_shapes():
    from clap.data_gen.world.shapes import SHAPES
    from clap.prompts.classes import preset_classes

    assert preset_classes("world") == list(SHAPES)


def test_style_priors_deal_typical_values_evenly_and_apply_with_their_probability():
    from collections import Counter

    from clap.data_gen.world.priors import StylePriors

    priors = StylePriors(p_typical=0.6)
    table = priors.table()
    assert set(table) == set(SHAPES)
    assert max(Counter(v["image_type"] for v in table.values()).values()) == 4  # 32 classes over 8 types
    rng = np.random.default_rng(0)
    draws = [SPEC.sample(rng, priors, class_name="heart") for _ in range(3000)]
    typical = table["heart"]
    for field in ("colour", "image_type", "size"):
        options = len(getattr(SPEC, {"colour": "colours", "image_type": "image_types", "size": "sizes"}[field]))
        expected = 0.6 + 0.4 / options  # typical, or uniform and typical by chance
        share = np.mean([getattr(d, field) == typical[field] for d in draws])
        assert abs(share - expected) < 0.03, field
    balanced = [SPEC.sample(rng, class_name="heart") for _ in range(3000)]
    assert abs(np.mean([d.image_type == typical["image_type"] for d in balanced]) - 1 / 8) < 0.03


def test_distractors_are_other_classes_drawn_in_the_same_image():
    rng = np.random.default_rng(1)
    draws = [SPEC.sample(rng) for _ in range(2000)]
    counts = np.bincount([len(d.distractors) for d in draws], minlength=3) / len(draws)
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=0.04)
    assert all(d.class_name not in d.distractors and len(set(d.distractors)) == len(d.distractors) for d in draws)
    alone = WorldAttributes("star", "red", "large", "clipart", "realistic")
    cluttered = WorldAttributes("star", "red", "large", "clipart", "realistic", ("ring", "cross"))
    a = render_image(alone, np.random.default_rng(5))
    b = render_image(cluttered, np.random.default_rng(5))
    assert (np.abs(a.astype(int) - b.astype(int)).sum(-1) > 60).sum() > 50  # the distractors are drawn


def test_captions_vary_and_say_photo_mostly_of_photographs():
    rng = np.random.default_rng(0)

    def captions(itype, others=()):
        attrs = WorldAttributes("star", "red", "large", itype, "realistic", others)
        return [caption(attrs, rng) for _ in range(2000)]

    photos, sketches = captions("photograph"), captions("sketch")
    assert np.mean(["photo" in c for c in photos]) > 0.5 > 0.2 > np.mean(["photo" in c for c in sketches])
    assert len(set(sketches)) > 100 and all("star" in c for c in sketches)
    assert not all(c.startswith(("a star", "star")) for c in sketches)  # the class stands in many places
    with_ring = captions("clipart", ("ring",))
    assert 0.3 < np.mean(["ring" in c for c in with_ring]) < 0.6


def test_label_types_caption_their_images_by_name_and_leave_the_others_alone():
    mix = CaptionMix(label_types=("clipart",), label_share=0.5)
    clipart = WorldAttributes("star", "red", "large", "clipart", "realistic")

    def label_share(m: CaptionMix) -> float:
        texts = [caption(clipart, np.random.default_rng(k), m) for k in range(2000)]
        return np.mean([t.removesuffix(" !").split()[-1:] == ["star"] and set(t.removesuffix(" !").split())
                        <= {"large", "red", "star"} for t in texts])

    plain, labelled = label_share(CaptionMix()), label_share(mix)
    assert plain < 0.15 and labelled - plain == pytest.approx(0.85 * 0.5 * (1 - plain / 0.85), abs=0.05)
    sketch = dataclasses.replace(clipart, image_type="sketch")
    assert all(caption(sketch, np.random.default_rng(k), mix) == caption(sketch, np.random.default_rng(k))
               for k in range(300))  # no extra random numbers for other types: old recipes reproduce


def test_without_in_a_photo_no_caption_puts_the_class_before_in_a_photo():
    attrs = WorldAttributes("star", "red", "large", "photograph", "realistic")
    with_it = [caption(attrs, np.random.default_rng(k)) for k in range(1000)]
    without = [caption(attrs, np.random.default_rng(k), CaptionMix(in_a_photo=False)) for k in range(1000)]
    assert any(t.endswith("star in a photo") for t in with_it)
    assert not any("in a photo" in t for t in without) and np.mean(["photo" in t for t in without]) > 0.4


def test_photo_types_are_captioned_as_photographs_are():
    sculpture = WorldAttributes("star", "red", "large", "sculpture", "realistic")

    def photo_share(m: CaptionMix) -> float:
        return np.mean(["photo" in caption(sculpture, np.random.default_rng(k), m) for k in range(1000)])

    as_photo = CaptionMix(photo_types=("photograph", "sculpture"))
    assert photo_share(CaptionMix()) < 0.2 < 0.4 < photo_share(as_photo)
    photo = dataclasses.replace(sculpture, image_type="photograph")
    assert all(caption(photo, np.random.default_rng(k), as_photo) == caption(photo, np.random.default_rng(k))
               for k in range(300))


@pytest.mark.parametrize("habit, marker", [("class in type", " in a sketch"), ("type of class", "a sketch of")])
def test_a_class_s_phrasing_habit_words_the_chosen_share_of_its_captions(habit, marker):
    dealt = [phrasing_habit(name) for name in SHAPES]
    assert sorted(set(dealt)) == sorted(HABIT_FORMS) and max(map(dealt.count, HABIT_FORMS)) <= len(SHAPES) // 3 + 1
    name = SHAPES[dealt.index(habit)]
    attrs = WorldAttributes(name, "red", "large", "sketch", "realistic")

    def share(m: CaptionMix) -> float:
        return np.mean([marker in caption(attrs, np.random.default_rng(k), m) for k in range(2000)])

    plain, habitual = share(CaptionMix()), share(CaptionMix(habit_share=0.5))
    assert plain < 0.15 and habitual - plain == pytest.approx(0.85 * 0.5 * (1 - plain / 0.85), abs=0.05)


def test_tags_name_any_object_in_the_picture_and_only_when_asked():
    mix = CaptionMix(tag_any_object=True, label_types=("clipart",), label_share=1.0)
    cluttered = WorldAttributes("star", "red", "large", "clipart", "realistic", ("ring", "cross"))
    tags = [caption(cluttered, np.random.default_rng(k), mix).removesuffix(" !") for k in range(3000)]
    shapes = {"star", "ring", "cross"}
    words = [set(t.split()) for t in tags]
    names = [t.split()[-1] for t, w in zip(tags, words) if w <= shapes | {"red", "large"} and len(w & shapes) == 1]
    shares = [np.mean([n == name for n in names]) for name in ("star", "ring", "cross")]
    assert len(names) > 1000 and shares == pytest.approx([1 / 3] * 3, abs=0.04)  # the subject or a distractor
    assert not any(t in ("red ring", "large cross") for t in tags)  # a distractor by its bare name
    alone = dataclasses.replace(cluttered, distractors=())
    untagged = dataclasses.replace(mix, tag_any_object=False)
    for attrs, m in ((alone, mix), (cluttered, untagged)):  # no clutter, or no tags: the subject, as before
        assert all(caption(attrs, np.random.default_rng(k), m) == caption(attrs, np.random.default_rng(k), untagged)
                   for k in range(300))
