"""Readers for real anomaly-segmentation data (Cityscapes, RoadAnomaly, SegmentMeIfYouCan), on tiny fakes of their
folder layouts, through `clap eval anomaly` and the segmentation route."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clap.cli.main import main
from clap.data.scenes import CITYSCAPES, read_scenes


def _image(path, seed: int, size=(48, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _label(path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def _binary(anomaly: int, void: int | None, seed: int, size=(48, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(size, np.uint8)
    top, left = rng.integers(0, size[0] - 12), rng.integers(0, size[1] - 12)
    labels[top:top + 12, left:left + 12] = anomaly
    if void is not None:
        labels[:3] = void
    return labels


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    for i in range(3):
        _image(root / "road" / "frames" / f"r{i}.jpg", i)
        _label(root / "road" / "frames" / f"r{i}.labels" / "labels_semantic.png", _binary(2, None, i))
        _image(root / "smiyc" / "images" / f"validation{i}.jpg", 10 + i)
        _label(root / "smiyc" / "labels_masks" / f"validation{i}_labels_semantic.png", _binary(1, 255, i))
        _label(root / "smiyc" / "labels_masks" / f"validation{i}_labels_semantic_color.png", _binary(9, 9, i))
        city = f"aachen_00000{i}_000019"
        _image(root / "cityscapes" / "leftImg8bit" / "train" / "aachen" / f"{city}_leftImg8bit.png", 20 + i)
        train_ids = np.random.default_rng(i).integers(0, 19, (48, 80))
        train_ids[:2] = 255
        _label(root / "cityscapes" / "gtFine" / "train" / "aachen" / f"{city}_gtFine_labelTrainIds.png", train_ids)
    return root


def test_each_layout_is_read_with_its_label_convention(fakes):
    road, smiyc, city = (read_scenes(fakes / n) for n in ("road", "smiyc", "cityscapes"))
    assert (len(road), road.anomaly, road.void, set(road.domains)) == (3, 2, 255, {"RoadAnomaly"})
    assert (len(smiyc), smiyc.anomaly, smiyc.void, set(smiyc.domains)) == (3, 1, 255, {"smiyc"})
    assert [p.name for p in smiyc.images] == [f"validation{i}.jpg" for i in range(3)]  # the colour maps skipped
    assert (len(city), set(city.domains)) == (3, {"aachen"}) and city.classes == road.classes == list(CITYSCAPES)
    assert city.label(0).max() == 255 and city.label(0)[2:].max() <= 18


def test_real_layouts_through_training_and_evaluation(fakes, tmp_path):
    """A decoder trained on the Cityscapes fake scores the RoadAnomaly fake; SMIYC's void rows count nowhere."""
    assert main(["train", "--config", "experiments/configs/world_vl4ad.yaml", "--data.root", str(fakes / "cityscapes"),
                 "--data.batch_size", "2", "--trainer.max_steps", "3", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(tmp_path / "runs"), "--out", str(tmp_path / "decoder")]) == 0
    assert json.loads((tmp_path / "decoder" / "adapter_config.json").read_text())["classes"] == list(CITYSCAPES)
    for name, extra in (("road", ["--decoder", str(tmp_path / "decoder")]), ("smiyc", [])):
        assert main(["eval", "anomaly", "--dataset", str(fakes / name), "--out", str(tmp_path / name),
                     "--no-progress", "--n-boot", "100", *extra]) == 0
    road = json.loads((tmp_path / "road" / "anomaly.json").read_text())["results"]["anomaly"]["CLIP"]
    assert set(road) == {"RoadAnomaly", "mean"} and "Decoder" in road["mean"]
    assert 0 <= road["mean"]["Decoder"]["AUROC"] <= 1


def test_a_missing_label_map_is_one_line(fakes, tmp_path, capsys):
    import shutil

    broken = tmp_path / "road"
    shutil.copytree(fakes / "road", broken)
    (broken / "frames" / "r1.labels" / "labels_semantic.png").unlink()
    assert main(["eval", "anomaly", "--dataset", str(broken), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scene files are missing" in err and "labels_semantic.png" in err
