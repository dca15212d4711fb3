"""`clap eval anomaly`: pixel-wise anomaly segmentation of rendered scenes, training-free (dense features)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clap.adapter.disentangler import Disentangler
from clap.cli.main import main
from clap.data.scenes import read_scenes
from clap.evaluation.protocols.pixel_metrics import pixel_metrics


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from clap.data_gen.world.render import WorldSpec
    from clap.data_gen.world.scenes import render_scenes

    root = tmp_path_factory.mktemp("scenes") / "s"
    render_scenes(root, 12, seed=2, spec=WorldSpec(image_types=("sketch", "photograph")), progress=False)
    return root


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, embedded):
    folder = tmp_path_factory.mktemp("adapter") / "a"
    adapter = Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict())
    torch.manual_seed(0)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.2)
    adapter.save_pretrained(folder)
    return folder


def _max_logit_by_hand(embedded, scenes_root) -> dict[str, float]:
    """CLIP's MaxLogit pixel AUROC per image type, mean over types, recomputed from the dense features."""
    scene_set = read_scenes(scenes_root)
    text = F.normalize(embedded.encode_text([f"a photo of a {c}" for c in scene_set.classes]), dim=-1)
    per_domain = {}
    for domain, indices in scene_set.by_domain().items():
        scores, labels = [], []
        for i in indices:
            label = np.array(Image.open(scene_set.labels[i]))
            dense = F.normalize(embedded.encode_image_dense(scene_set.image(i)[None]), dim=1)
            u = -torch.einsum("bdhw,kd->bkhw", dense, text).max(dim=1, keepdim=True).values / 0.01
            scores.append(F.interpolate(u, size=label.shape, mode="bilinear", align_corners=False)[0, 0].numpy())
            labels.append(label)
        per_domain[domain] = pixel_metrics(np.stack(scores), np.stack(labels), 254, 255)["AUROC"]
    return {**per_domain, "mean": float(np.mean(list(per_domain.values())))}


def test_eval_anomaly_end_to_end(scenes, adapter, embedded, tmp_path, capsys):
    """Per image type and mean, every score, CLIP and an adapter with its interval over scenes, the figure; CLIP's
    MaxLogit row equals a hand computation (anomaly = -max_k cos / T, upsampled, void ignored) to the 0.001 the
    streamed bins allow."""
    out = tmp_path / "r"
    assert main(["eval", "anomaly", "--dataset", str(scenes), "--adapter", f"X={adapter}", "--ood-prompts",
                 "spiky shape", "--out", str(out), "--no-progress", "--n-boot", "100"]) == 0
    report = json.loads((out / "anomaly.json").read_text())
    rows = report["results"]["anomaly"]
    domains = set(read_scenes(scenes).domains)
    assert set(rows) == {"CLIP", "X"} and set(rows["CLIP"]) == domains | {"mean"}
    assert set(rows["CLIP"]["mean"]) == {"MCM", "MaxLogit", "Energy", "MaxLogitEnsemble", "VL4AD", "OODPrompts"}
    by_hand = _max_logit_by_hand(embedded, scenes)
    for domain, value in by_hand.items():
        assert rows["CLIP"][domain]["MaxLogit"]["AUROC"] == pytest.approx(value, abs=1e-3), domain
    difference = report["statistics"]["differences"]["anomaly"]["X"]["MaxLogit AUROC"]
    assert difference["low"] < difference["high"] and difference["n"] == 12
    assert difference["difference"] == pytest.approx(rows["X"]["mean"]["MaxLogit"]["AUROC"] - by_hand["mean"],
                                                     abs=1e-3)
    assert report["anomaly"]["dense_grid"] == [4, 4] and (out / "anomaly_maps.png").stat().st_size > 10_000
    assert "Pixel-wise anomaly segmentation" in (out / "anomaly.md").read_text()


def test_anomaly_is_a_task_of_clap_evaluate_as_of_clap_eval(scenes, adapter, tmp_path):
    """One pipeline: `clap.evaluate(scenes, tasks="anomaly")` gives the CLI's document (an adapter object too);
    anomaly runs alone, and an option it does not read is refused."""
    import clap
    from clap.errors import ClapError

    options = {"ood_prompts": ["spiky shape"], "n_boot": 100, "progress": False}
    report = clap.evaluate(scenes, adapters={"X": Disentangler.from_pretrained(adapter)}, tasks="anomaly", **options)
    assert main(["eval", "anomaly", "--dataset", str(scenes), "--adapter", f"X={adapter}", "--ood-prompts",
                 "spiky shape", "--out", str(tmp_path / "cli"), "--no-progress", "--n-boot", "100"]) == 0
    cli = json.loads((tmp_path / "cli" / "anomaly.json").read_text())
    mine = report.to_dict()
    assert mine["results"]["anomaly"] == cli["results"]["anomaly"]
    assert mine["statistics"]["differences"] == cli["statistics"]["differences"]
    assert mine["protocol"] == cli["protocol"] and mine["anomaly"]["dense_grid"] == cli["anomaly"]["dense_grid"]
    with pytest.raises(ClapError, match="anomaly runs on a scene folder with label maps, alone"):
        clap.evaluate(scenes, tasks=["anomaly", "zeroshot"])
    with pytest.raises(ClapError, match="`cache` does nothing for anomaly"):
        clap.evaluate(scenes, tasks="anomaly", cache=str(tmp_path / "c"))


def test_merging_families_moves_vl4ad_and_not_the_max_logit(scenes, tmp_path):
    for name, extra in (("plain", []), ("merged", ["--merge", "families"])):
        assert main(["eval", "anomaly", "--dataset", str(scenes), "--out", str(tmp_path / name), "--no-progress",
                     "--n-boot", "100", "--dense-scale", "2", *extra]) == 0
    plain, merged = (json.loads((tmp_path / n / "anomaly.json").read_text()) for n in ("plain", "merged"))
    assert merged["anomaly"]["dense_grid"] == [8, 8] and merged["anomaly"]["merge"]
    a, b = plain["results"]["anomaly"]["CLIP"]["mean"], merged["results"]["anomaly"]["CLIP"]["mean"]
    assert a["MaxLogitEnsemble"] == b["MaxLogitEnsemble"] and a["VL4AD"] != b["VL4AD"]


def test_bad_scene_folders_are_one_line(scenes, tmp_path_factory, tmp_path, capsys):
    out, tmp_path = tmp_path, tmp_path_factory.mktemp("inputs")

    def error(*argv) -> str:
        assert main(["eval", "anomaly", "--out", str(out / "r"), "--no-progress", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("clap: error: ") and err.count("\n") == 1, err
        return err

    assert "no scenes with label maps" in error("--dataset", str(tmp_path))
    few = tmp_path / "few"
    from clap.data_gen.world.scenes import render_scenes

    render_scenes(few, 1, seed=0, ood=False, progress=False)
    assert "hold no anomaly pixels" in error("--dataset", str(few))
    assert "not classes of the dataset" in error("--dataset", str(scenes), "--merge", _groups(tmp_path))
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(scenes, broken)
    first = sorted((broken / "labels").iterdir())[0]
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(first)
    assert "give label maps of the images' size" in error("--dataset", str(broken))
    first.unlink()
    assert "scene files are missing" in error("--dataset", str(broken))
    assert not (out / "r" / "anomaly.json").exists()


def _groups(tmp_path) -> str:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"odd": ["circle", "no such shape"]}))
    return str(path)


def test_the_figure_keeps_scenes_at_display_size():
    """A large scene's image, truth and heat map are kept for the figure at most SHOWN_SIDE pixels a side (every
    k-th pixel), the same grid for each; small ones as they are."""
    from clap.evaluation.protocols.anomaly import SHOWN_SIDE, for_display

    image, truth = np.arange(1024 * 768 * 3).reshape(1024, 768, 3), np.arange(1024 * 768).reshape(1024, 768)
    shown = for_display(image)
    assert shown.shape == (256, 192, 3) and max(shown.shape[:2]) <= SHOWN_SIDE
    assert np.array_equal(shown[..., 0] // 3, for_display(truth)) and shown[1, 1, 0] == image[4, 4, 0]
    small = np.zeros((128, 128))
    assert for_display(small) is small
