"""Scenes with pixel label maps (`clap world render --layout scenes`): labels match the drawn objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clap.cli.main import main
from clap.data_gen.world.scenes import ANOMALY, RIM, VOID, SceneObject, render_scenes
from clap.prompts.classes import world_held_out


def _rows(root):
    return [json.loads(line) for line in (root / "scenes.jsonl").read_text().splitlines()]


def test_label_maps_match_the_drawn_objects(tmp_path):
    """Each object's solid pixels carry its class index (the held-out object's exactly ANOMALY), pixels no object
    touches are background, the rim is void; about half the scenes hold one anomaly of a held-out class."""
    render_scenes(tmp_path, 10, seed=3, progress=False)
    world = json.loads((tmp_path / "world.json").read_text())["labels"]
    classes, background = world["classes"], world["background"]
    assert background == len(classes) == 24 and not set(classes) & set(world_held_out())
    anomalies = 0
    for row in _rows(tmp_path):
        label = np.asarray(Image.open(tmp_path / row["label"]))
        image = np.asarray(Image.open(tmp_path / row["image"]))
        assert label.shape == image.shape[:2] == (128, 128) and label.dtype == np.uint8
        masks = [SceneObject(**o).mask(128) for o in row["objects"]]
        total = np.sum(masks, axis=0)
        assert (label[total == 0] == background).all() and (label[(total > RIM[0]) & (total < RIM[1])] == VOID).all()
        for obj, mask in zip(row["objects"], masks):
            value = ANOMALY if obj["anomaly"] else classes.index(obj["class_name"])
            assert (label[mask >= RIM[1]] == value).all()
        held = [m for o, m in zip(row["objects"], masks) if o["anomaly"]]
        assert len(held) <= 1 and all(o["class_name"] in world_held_out() for o in row["objects"] if o["anomaly"])
        assert np.array_equal(label == ANOMALY, held[0] >= RIM[1] if held else np.zeros_like(label, bool))
        anomalies += len(held)
    assert 2 <= anomalies <= 8


def test_training_scenes_without_anomalies_resume_and_refuse_another_render(tmp_path, capsys):
    out = tmp_path / "train"
    assert main(["world", "render", "--layout", "scenes", "--scenes", "6", "--no-ood", "--out", str(out),
                 "--no-progress"]) == 0
    rows = _rows(out)
    assert not any(o["anomaly"] for r in rows for o in r["objects"])
    assert all((np.asarray(Image.open(out / r["label"])) != ANOMALY).all() for r in rows)
    first = (out / rows[0]["image"]).read_bytes()
    (out / rows[0]["image"]).unlink()
    assert main(["world", "render", "--layout", "scenes", "--scenes", "6", "--no-ood", "--out", str(out),
                 "--no-progress"]) == 0
    assert (out / rows[0]["image"]).read_bytes() == first
    capsys.readouterr()
    assert main(["world", "render", "--layout", "scenes", "--scenes", "7", "--no-ood", "--out", str(out)]) == 2
    assert "different scene render" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--layout", "domains", "--scenes", "3"], "--scenes and --no-ood go with --layout scenes"),
    (["--layout", "scenes"], "needs --scenes N"),
    (["--layout", "scenes", "--scenes", "2", "--image-size", "40"], "scene size 40 is impossible"),
    (["--layout", "scenes", "--scenes", "2", "--image-size", "2048"], "--image-size"),
    (["--layout", "domains", "--image-size", "1024"], "image size 1024 is impossible"),
])
def test_scene_misuse_is_one_line(tmp_path, capsys, argv, message):
    assert main(["world", "render", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
