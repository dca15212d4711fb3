"""The segmentation route: VL4AD's mask decoder, its set loss, training on ID scenes and `clap eval anomaly
--decoder`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clap.cli.main import main
from clap.training.mask_losses import set_loss

VOID = 255


def _scene_labels() -> torch.Tensor:
    labels = torch.full((8, 8), 3, dtype=torch.long)  # background 3
    labels[1:4, 1:4], labels[5:7, 2:6], labels[0, :] = 0, 2, VOID
    return labels


def test_set_loss_matches_queries_to_segments_whatever_their_order():
    """Queries that predict the segments exactly (in any order, others predicting no-object) cost less than wrong
    ones, and permuting the queries changes nothing: the Hungarian matching finds the pairs."""
    labels = _scene_labels()
    n_classes, segments = 4, [0, 2, 3]
    masks = torch.full((5, 8, 8), -8.0)
    logits = torch.full((5, n_classes + 1), -5.0)
    for q, c in enumerate(segments):
        masks[q][labels == c] = 8.0
        logits[q, c] = 5.0
    logits[3:, n_classes] = 5.0
    right = set_loss(masks, logits, labels, VOID)
    order = torch.tensor([4, 2, 0, 3, 1])
    permuted = set_loss(masks[order], logits[order], labels, VOID)
    for key in right:
        assert torch.allclose(right[key], permuted[key]), key
    wrong = set_loss(masks.roll(1, 0), logits, labels, VOID)
    assert right["loss"] < 0.2 < wrong["loss"] and right["dice"] < 0.01
    masked_void = masks.clone()
    masked_void[:, 0, :] = 123.0  # void pixels count nowhere
    assert torch.allclose(set_loss(masked_void, logits, labels, VOID)["loss"], right["loss"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A decoder trained briefly on 8 in-distribution scenes, and test scenes with anomalies."""
    from clap.data_gen.world.render import WorldSpec
    from clap.data_gen.world.scenes import render_scenes

    root = tmp_path_factory.mktemp("segmentation")
    spec = WorldSpec(image_types=("sketch", "photograph"))
    render_scenes(root / "train", 8, seed=1, ood=False, spec=spec, progress=False)
    render_scenes(root / "test", 12, seed=2, spec=spec, progress=False)
    assert main(["train", "--config", "experiments/configs/world_vl4ad.yaml", "--data.root", str(root / "train"),
                 "--data.window", "10", "--trainer.max_steps", "40", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(root / "runs"), "--out", str(root / "decoder")]) == 0
    return root


def test_the_decoder_trains_on_id_scenes_and_saves_only_itself(trained, embedded):
    summary = json.loads((trained / "decoder" / "training_summary.json").read_text())
    losses = [w["mean_loss"] for w in summary["window_losses"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert summary["training_data"] == {"route": "segmentation", "classes": 25, "scenes": 8,
                                        "source": str(trained / "train")}
    config = json.loads((trained / "decoder" / "adapter_config.json").read_text())
    assert config["route"] == "segmentation" and config["classes"][-1] == "background" and len(config["classes"]) == 25
    assert config["decoder"]["queries"] == 16 and config["decoder"]["dense_scale"] == 2.0
    assert config["backbone"]["checksum"] == embedded.identity.checksum
    keys = set(load_file(str(trained / "decoder" / "adapter_model.safetensors")))
    assert keys and all(k.split(".")[0] in {"pixel", "queries", "layers", "mask_head", "embed_head", "no_object"}
                        for k in keys)


def test_same_seed_same_decoder(trained, tmp_path):
    assert main(["train", "--config", "experiments/configs/world_vl4ad.yaml", "--data.root", str(trained / "train"),
                 "--data.window", "10", "--trainer.max_steps", "40", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(tmp_path / "runs"), "--out", str(tmp_path / "again")]) == 0
    first, again = (load_file(str(p / "adapter_model.safetensors")) for p in (trained / "decoder", tmp_path / "again"))
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_eval_anomaly_with_the_decoder(trained, tmp_path):
    out = tmp_path / "r"
    assert main(["eval", "anomaly", "--dataset", str(trained / "test"), "--decoder", str(trained / "decoder"),
                 "--ood-prompts", "a spiky shape", "--merge", "families", "--out", str(out), "--no-progress",
                 "--n-boot", "100"]) == 0
    report = json.loads((out / "anomaly.json").read_text())
    mean = report["results"]["anomaly"]["CLIP"]["mean"]
    assert {"Decoder", "DecoderMerged", "DecoderOODPrompts", "MaxLogit"} <= set(mean)
    assert all(0 <= mean[s]["AUROC"] <= 1 for s in mean)
    assert report["anomaly"]["decoders"]["CLIP"][0]["config"]["queries"] == 16
    miou = report["results"]["anomaly_decoders"]["CLIP"]["miou"]
    assert len(miou) == 1 and 0 < miou[0] <= 1
    assert "Protocol: VL4AD pixel-wise anomaly segmentation" in (out / "anomaly.md").read_text()


def test_class_logits_with_concepts_take_each_class_its_best_concept():
    from clap.adapter.mask_decoder import MaskDecoder, decoder_config
    from clap.evaluation.protocols.anomaly import mean_iou

    torch.manual_seed(0)
    decoder = MaskDecoder(decoder_config(8, ["a", "b"], concepts={"a": ["x", "y"], "b": ["z"]}))
    v, text = torch.randn(5, 8), torch.randn(3, 8)
    logits = decoder.class_logits(v, text, torch.tensor([0, 0, 1]))
    cos = torch.nn.functional.normalize(v, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    expected = torch.stack([cos[:, :2].max(1).values, cos[:, 2]], 1) / decoder.temperature
    assert torch.allclose(logits[:, :2], expected, atol=1e-6) and logits.shape == (5, 3)
    assert torch.allclose(decoder.class_logits(v, text[:2])[:, :2], cos[:, :2] / decoder.temperature, atol=1e-6)
    # mIoU by hand (rows the truth): class 0: TP 3, FN 1 + 1, FP 2: 3/7; class 1: TP 4, FN 2, FP 1: 4/7; class 2 is
    # absent from the truth (though predicted once) and not averaged
    confusion = np.array([[3, 1, 1], [2, 4, 0], [0, 0, 0]])
    assert mean_iou(confusion) == pytest.approx((3 / 7 + 4 / 7) / 2)


def test_a_decoder_trained_behind_an_adapter_serves_that_adapter_alone(trained, tmp_path, embedded, capsys):
    """A decoder trained on an adapter's features and a concept ensemble records both; scoring pairs it with the model
    of that adapter at that alpha, CLIP keeps its own decoders (two seeds: the row is their mean), and a decoder whose
    adapter is not given is one line."""
    from clap.adapter.config import AdapterConfig
    from clap.adapter.disentangler import Disentangler

    torch.manual_seed(1)
    adapter = Disentangler(AdapterConfig(in_dim=embedded.embed_dim, alpha=0.5, backbone=embedded.identity.to_dict()))
    with torch.no_grad():
        adapter.projection.weight.normal_(0, 0.05)
    adapter.save_pretrained(tmp_path / "clap")
    train = ["train", "--config", "experiments/configs/world_vl4ad.yaml", "--data.root", str(trained / "train"),
             "--data.window", "10", "--trainer.max_steps", "10", "--trainer.enable_progress_bar", "false"]
    assert main([*train, "--data.adapter", str(tmp_path / "clap"), "--data.concepts", "world",
                 "--trainer.default_root_dir", str(tmp_path / "runs"), "--out", str(tmp_path / "behind")]) == 0
    config = json.loads((tmp_path / "behind" / "adapter_config.json").read_text())["decoder"]
    assert config["feature_adapter"] == {"path": str((tmp_path / "clap").resolve()), "alpha": 0.5}
    assert config["concepts"]["circle"] == ["a circle", "circles", "a round disc"]
    assert main([*train, "--seed_everything", "7", "--trainer.default_root_dir", str(tmp_path / "runs2"),
                 "--out", str(tmp_path / "second")]) == 0
    argv = ["eval", "anomaly", "--dataset", str(trained / "test"), "--no-progress", "--n-boot", "100",
            "--decoder", str(trained / "decoder"), "--decoder", str(tmp_path / "second"),
            "--decoder", str(tmp_path / "behind")]
    assert main([*argv, "--adapter", f"CLAP={tmp_path / 'clap'}@0.5", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "anomaly.json").read_text())
    assert [len(report["anomaly"]["decoders"][m]) for m in ("CLIP", "CLAP")] == [2, 1]
    rows = report["results"]["anomaly"]
    assert "DecoderConcepts" in rows["CLAP"]["mean"] and "Decoder" not in rows["CLAP"]["mean"]  # its kind: concepts
    assert "Decoder" in rows["CLIP"]["mean"]
    per_domain = [rows["CLIP"][d]["Decoder"]["AUROC"] for d in ("sketch", "photograph")]
    assert rows["CLIP"]["mean"]["Decoder"]["AUROC"] == pytest.approx(np.mean(per_domain), abs=2e-3)
    clip = report["results"]["anomaly_decoders"]["CLIP"]
    assert len(clip["miou"]) == 2
    assert rows["CLIP"]["mean"]["Decoder"]["AUROC"] == pytest.approx(np.mean(clip["scores"]["Decoder"]["AUROC"]),
                                                                     abs=2e-3)
    assert report["statistics"]["differences"]["anomaly"]["CLAP"]["MaxLogit AUROC"]["decoder seeds"] == 2
    capsys.readouterr()
    assert main([*argv, "--adapter", f"CLAP={tmp_path / 'clap'}@0.3", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "trained behind the adapter" in err and err.count("\n") == 1


def test_decoder_misuse_is_one_line(trained, tmp_path, capsys):
    def error(*argv) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("clap: error: ") and err.count("\n") == 1, err
        return err

    assert "in-distribution scenes only" in error(
        "train", "--config", "experiments/configs/world_vl4ad.yaml", "--data.root", str(trained / "test"),
        "--trainer.max_steps", "2", "--out", str(tmp_path / "d"))
    other = tmp_path / "other"
    other.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (other / name).write_bytes((trained / "decoder" / name).read_bytes())
    config = json.loads((other / "adapter_config.json").read_text())
    config["backbone"]["checksum"] = "0000000000000000"
    (other / "adapter_config.json").write_text(json.dumps(config))
    assert "mask decoder was trained on" in error("eval", "anomaly", "--dataset", str(trained / "test"), "--decoder",
                                             str(other), "--out", str(tmp_path / "r"), "--no-progress")


def test_world_vl4ad_reproduction_runs_shrunk(tmp_path, experiment_script):
    """Scenes, 2 CLAP seeds on the ID classes, each route's decoders of both kinds (2 seeds), alpha on validation,
    the evaluation; the summary rebuilds alike."""
    from pathlib import Path

    from clap.prompts.classes import world_held_out

    script = experiment_script("experiments/world_vl4ad/reproduce.py")
    results = tmp_path / "results"
    assert script.run(["--out", str(tmp_path / "run"), "--results", str(results), "--train-scenes", "8",
                       "--test-scenes", "12", "--decoder-steps", "10", "--clap-steps", "10", "--seeds", "2",
                       "--n-boot", "100", "--image-types", "sketch", "photograph"]) == 0
    report = json.loads((results / "anomaly.json").read_text())
    assert set(report["results"]["anomaly"]) == {"CLIP", "CLAP#1", "CLAP#2"}
    assert {m: len(d) for m, d in report["anomaly"]["decoders"].items()} == {"CLIP": 4, "CLAP#1": 2, "CLAP#2": 2}
    for member in ("CLAP#1", "CLAP#2"):  # each CLAP seed's decoders were trained behind that seed's adapter
        paths = {d["config"]["feature_adapter"]["path"] for d in report["anomaly"]["decoders"][member]}
        assert paths == {str(Path(report["models"][member]["adapter"]).resolve())}
        assert not set(report["models"][member]["training_data"]["source"].split()) & set(world_held_out())
    assert report["anomaly"]["ood_prompts"] == list(script.OOD_PROMPTS) and report["anomaly"]["merge"]
    text = (results / "summary.md").read_text()
    assert "| CLAP | Decoder |" in text and "| anomaly | CLAP | Decoder AUROC |" in text
    assert "| CLIP | DecoderConcepts |" in text and "| CLIP | DecoderMerged |" in text
    (results / "summary.md").unlink()
    assert script.run(["--results", str(results), "--summary-only"]) == 0
    assert (results / "summary.md").read_text() == text


def test_readme_quotes_the_committed_anomaly_summary():
    """experiments/world_vl4ad/README.md holds the committed summary's tables verbatim."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "experiments" / "world_vl4ad"
    summary = (folder / "results" / "summary.md").read_text()
    tables = [block for block in summary.split("\n\n") if block.startswith("| ")]
    assert len(tables) == 2 and all(block in (folder / "README.md").read_text() for block in tables)
