"""The CLIPN route: losses and decision rules by hand, training, files, determinism, resume, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from clap.adapter.disentangler import Disentangler
from clap.adapter.negation import CopiedNoEncoder, NegationAdapter, clipn_losses, ctw_atd, p_no
from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from clap.errors import ClapError
from clap.training.caption_data import meaning_ids, read_caption_pairs


def test_losses_match_a_manual_computation():
    torch.manual_seed(0)
    image, yes, no = (F.normalize(torch.randn(3, 4), dim=-1) for _ in range(3))
    t = 0.5
    out = clipn_losses(image, yes, no, t)
    loss_yes, loss_no = 0.0, 0.0
    for i in range(3):
        for j in range(3):
            a, b = math.exp(float(image[i] @ no[j]) / t), math.exp(float(image[i] @ yes[j]) / t)
            p = a / (a + b)  # the probability that text j does not describe image i
            if i == j:
                loss_yes += -math.log(1 - p) / 3
            else:
                loss_no += -math.log(p) / 6
    tso = sum(2 - math.sqrt(float(((yes[j] - no[j]) ** 2).sum()) + 1e-4) for j in range(3)) / 3
    assert out["loss_yes"].item() == pytest.approx(loss_yes, rel=1e-5)
    assert out["loss_no"].item() == pytest.approx(loss_no, rel=1e-5)
    assert out["loss_tso"].item() == pytest.approx(tso, rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * (loss_yes + loss_no + tso), rel=1e-5)


def test_pairs_of_the_same_meaning_leave_the_no_term():
    torch.manual_seed(1)
    image, yes, no = (F.normalize(torch.randn(4, 4), dim=-1) for _ in range(3))
    same = torch.zeros(4, 4, dtype=torch.bool)
    same[0, 2] = same[2, 0] = True  # pairs 0 and 2 show the same class
    masked = clipn_losses(image, yes, no, 0.5, same)
    nll = -torch.log(p_no(image, yes, no, 0.5))
    keep = [(i, j) for i in range(4) for j in range(4) if i != j and not same[i, j]]
    assert masked["loss_no"].item() == pytest.approx(float(sum(nll[i, j] for i, j in keep)) / len(keep), rel=1e-5)
    plain = clipn_losses(image, yes, no, 0.5)
    assert masked["loss_yes"] == plain["loss_yes"] and masked["loss_no"] != plain["loss_no"]
    assert clipn_losses(image, yes, no, 0.5, torch.zeros(4, 4, dtype=torch.bool))["loss"] == plain["loss"]


def test_ctw_and_atd_by_hand():
    p_yes = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0]])
    prob_no = torch.tensor([[0.1, 0.9, 0.9], [0.8, 0.3, 0.3], [0.6, 0.2, 0.0]])
    out = ctw_atd(p_yes, prob_no)
    # image 0: class 0 wins and says yes; image 1: class 0 wins but says no (0.8 > 0.5)
    assert out["CTW_ood"].tolist() == [False, True, True]  # image 2: k* = 0 (first max), p_no 0.6
    assert out["CTW"].tolist() == pytest.approx([0.9, 0.2, 0.4])
    joint = p_yes * (1 - prob_no)  # image 1: [0.08, 0.245, 0.175], p_ood = 0.5 > 0.245: OOD
    p_ood = 1 - joint.sum(1)
    assert out["ATD"].tolist() == pytest.approx((1 - p_ood).tolist())
    assert out["ATD_ood"].tolist() == [False, True, False]  # image 2: p_ood 0.4 is not above its best joint 0.4
    assert p_no(torch.eye(2), torch.eye(2), torch.eye(2)).tolist() == [[0.5, 0.5], [0.5, 0.5]]


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    render_world(root, "captions", 3, seed=4, spec=WorldSpec(), progress=False)
    return root


def config(tmp_path, captions, steps: int = 40, every: int = 20) -> list[str]:
    return ["train", "--model", "CLIPNModule", "--data", "CaptionDataModule", "--data.root", str(captions),
            "--data.batch_size", "16", "--data.window", "20", "--data.chunk_samples", "160",
            "--trainer.max_steps", str(steps), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
            "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path / "runs"),
            "--checkpoint.dirpath", str(tmp_path / "ckpt"), "--checkpoint.every_n_train_steps", str(every)]


def test_training_lowers_the_loss_and_writes_a_negation_adapter(tmp_path, captions, embedded):
    same_class = ["--data.same_meaning", "class_name"]  # the world's captions.jsonl rows name their class
    assert main(config(tmp_path, captions, steps=60) + same_class + ["--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "training_summary.json").read_text())
    losses = [w["mean_loss"] for w in summary["window_losses"]]
    assert summary["route"] == "negation" and losses[-1] < losses[0]
    adapter = Disentangler.from_pretrained(tmp_path / "a")
    assert isinstance(adapter, NegationAdapter) and adapter.config.prompt_tokens == 8
    assert adapter.config.training["lr"] == 1e-3  # its own default, not the parent class's (the CLI used to swap)
    assert adapter.no_prompts.shape == (8, embedded.token_width)
    no = adapter.no_features(embedded, ["a photo of a star"])
    assert no.shape == (1, embedded.embed_dim) and torch.isfinite(no).all()
    # the yes/no temperature follows the backbone's own logit scale (the tiny CLIP's is not CLIP's 100), recorded
    assert embedded.logit_scale != pytest.approx(100.0)
    assert adapter.config.training["temperature"] == pytest.approx(1 / embedded.logit_scale)
    assert adapter.config.classes == sorted(WorldSpec().classes)  # what the captions named or showed


def test_a_fixed_temperature_is_kept_and_scores_use_the_trained_one(tmp_path, captions, embedded):
    from clap.evaluation.protocols.ood import CLIPNScorer, clipn_temperature

    fixed = ["--model.temperature", "0.01", "--out", str(tmp_path / "a")]
    assert main(config(tmp_path, captions, steps=2) + fixed) == 0
    adapter = Disentangler.from_pretrained(tmp_path / "a")
    assert adapter.config.training["temperature"] == 0.01 and clipn_temperature(embedded, adapter) == 0.01
    assert CLIPNScorer(embedded, adapter, ["star", "ring"], ["a {}"]).temperature == 0.01
    adapter.config.training.pop("temperature")  # a file that does not say: the backbone's own
    assert clipn_temperature(embedded, adapter) == pytest.approx(1 / embedded.logit_scale)


def test_an_open_set_caption_render_neither_names_nor_shows_the_held_out_classes(tmp_path):
    from clap.prompts.classes import world_held_out, world_open_set
    from clap.training.caption_data import shown_classes

    held, kept = world_held_out(), world_open_set()
    assert not set(held) & set(kept) and len(held) + len(kept) == len(WorldSpec().classes)
    assert main(["world", "render", "--out", str(tmp_path / "c"), "--layout", "captions", "--open-set",
                 "--images-per-class", "6", "--seed", "3", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "c" / "captions.jsonl").read_text().splitlines()]
    shown = {r["class_name"] for r in rows} | {d for r in rows for d in r["distractors"]}
    assert shown <= set(kept) and shown_classes(tmp_path / "c") == sorted(shown)
    for row in rows:  # no caption names a held-out shape (ID names such as "double arrow" taken out first)
        text = f" {row['caption']} "
        for name in sorted(kept, key=len, reverse=True):
            text = text.replace(f" {name} ", " _ ")
        assert not [h for h in held if f" {h} " in text], row["caption"]
    full = tmp_path / "full"
    render_world(full, "captions", 6, seed=3, spec=WorldSpec(), progress=False)
    assert set(held) <= set(shown_classes(full))


def test_ood_report_records_a_clipn_adapter_trained_on_the_held_out_classes(tmp_path, embedded, tiny_open_clip):
    """A CLIPN adapter whose captions named the held-out shapes is listed under named_in_training and its rows are
    marked; its baselines (MSP, MaxLogit, Energy, MCM) come from its own yes logits, each compared with CTW/ATD."""
    from clap.prompts.classes import world_held_out

    test = tmp_path / "test"
    render_world(test, "domains", 1, seed=5, spec=WorldSpec(), progress=False)
    fresh = CopiedNoEncoder.from_backbone(embedded, prompts=2, backbone=embedded.identity.to_dict())
    fresh.config.classes = list(WorldSpec().classes)
    fresh.save_pretrained(tmp_path / "copy")
    assert main(["eval", "ood", "--dataset", str(test), "--adapter", f"CLIPN={tmp_path / 'copy'}", "--no-progress",
                 "--n-boot", "100", "--clipn-templates", "single", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "ood.json").read_text())
    assert sorted(report["results"]["ood_split"]["named_in_training"]["CLIPN"]) == sorted(world_held_out())
    assert report["results"]["ood_split"]["clipn_temperature"]["CLIPN"] == pytest.approx(1 / embedded.logit_scale)
    assert set(report["results"]["ood"]["CLIPN"]["mean"]) == {"CTW", "ATD", "MSP", "MaxLogit", "Energy", "MCM"}
    own = report["statistics"]["differences"]["ood"]["CLIPN"]["CTW AUROC (vs MSP AUROC, same model)"]
    mean = report["results"]["ood"]["CLIPN"]["mean"]
    assert own["difference"] == pytest.approx(mean["CTW"]["AUROC"] - mean["MSP"]["AUROC"])
    markdown = (tmp_path / "r" / "ood.md").read_text()
    assert "| CLIPN (named-class OOD) | CTW |" in markdown and "Note: rows marked (named-class OOD)" in markdown


@pytest.mark.parametrize("encoder", ["frozen", "copy"])
def test_same_seed_same_weights_and_exact_resume(tmp_path, captions, encoder):
    """Same seed, same weights; a run resumed from its step-20 checkpoint ends where the uninterrupted one does
    (the copy's per-caption prompt draws come from the seed and the step, not from a global generator)."""
    mode = ["--model.no_encoder", encoder, "--model.prompt_tokens", "4"]
    assert main(config(tmp_path / "a", captions) + mode + ["--out", str(tmp_path / "a" / "out")]) == 0
    assert main(config(tmp_path / "b", captions) + mode + ["--out", str(tmp_path / "b" / "out")]) == 0
    assert main(config(tmp_path / "c", captions, steps=20) + mode + ["--out", str(tmp_path / "c" / "half")]) == 0
    assert main(config(tmp_path / "c", captions) + mode + ["--out", str(tmp_path / "c" / "out"), "--ckpt_path",
                                                             str(tmp_path / "c" / "ckpt" / "last.ckpt")]) == 0
    a, b, c = (load_file(str(tmp_path / r / "out" / "adapter_model.safetensors")) for r in "abc")
    if encoder == "frozen":
        assert set(a) == {"linear.weight", "linear.bias", "projection.weight", "no_prompts"}
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)


def test_caption_layouts(tmp_path, captions):
    paths, texts, none = read_caption_pairs(captions)
    assert len(paths) == len(texts) == 96 and all(p.is_file() for p in paths) and none is None
    classes = read_caption_pairs(captions, "class_name")[2]
    assert len(set(classes)) == 32 and meaning_ids(96, classes).unique().numel() == 32
    flat = tmp_path / "cc3m"
    flat.mkdir()
    for i, (p, t) in enumerate(zip(paths[:3], texts)):
        (flat / f"{i}.png").write_bytes(p.read_bytes())
        (flat / f"{i}.txt").write_text(t + "\n")
    assert read_caption_pairs(flat) == (sorted(flat.glob("*.png")), texts[:3], None)
    with pytest.raises(ClapError, match="no field 'class_name'"):
        read_caption_pairs(flat, "class_name")
    rows = tmp_path / "pairs.jsonl"
    rows.write_text("".join(json.dumps({"image": f"cc3m/{i}.png", "caption": t}) + "\n"
                            for i, t in enumerate(texts[:3])))
    assert read_caption_pairs(rows)[1] == texts[:3]
    with pytest.raises(ClapError, match=r"pairs.jsonl:1: no field 'class_name'"):
        read_caption_pairs(rows, "class_name")
    assert meaning_ids(3, None).tolist() == [0, 1, 2]


@pytest.mark.parametrize("extra, message", [
    (["--data", "PromptDataModule"], "use --data CaptionDataModule"),
    (["--data", "CaptionDataModule", "--data.root", "NOWHERE"], "does not exist"),
    (["--data", "CaptionDataModule", "--data.root", "CAPTIONS", "--model.prompt_tokens=-1"], "prompt_tokens = -1"),
    (["--data", "CaptionDataModule", "--data.root", "CAPTIONS", "--model.no_encoder", "bogus"],
     "no_encoder = 'bogus': expected one of frozen, copy"),
    (["--data", "CaptionDataModule", "--data.root", "CAPTIONS", "--model.no_encoder", "copy",
      "--model.prompt_tokens", "0"], "leaves a copied 'no' encoder without prompts"),
])
def test_one_line_errors(tmp_path, captions, capsys, extra, message):
    names = {"NOWHERE": str(tmp_path / "nowhere"), "CAPTIONS": str(captions)}
    code = main(["train", "--model", "CLIPNModule", *[names.get(a, a) for a in extra], "--out", str(tmp_path / "a"),
                 "--trainer.max_steps", "2", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "a" / "adapter_model.safetensors").exists()


def test_copied_no_encoder_starts_as_the_frozen_tower_and_trains_only_itself(tmp_path, captions, embedded):
    """The authors' architecture: before training the copy's "no" features are the frozen tower's "yes" features;
    training moves the copy and the prompts and nothing of the backbone; the file holds only them."""
    fresh = CopiedNoEncoder.from_backbone(embedded, prompts=4)
    texts = ["a photo of a star", "a sketch of a small blue moon"]
    with torch.no_grad():
        yes = F.normalize(embedded.encode_text(texts), dim=-1)
        assert torch.allclose(fresh.no_features(embedded, texts), yes, atol=1e-6)
        assert torch.allclose(fresh.training_no_features(embedded, texts), yes, atol=1e-6)
    frozen = {name: p.detach().clone() for name, p in embedded.model.named_parameters()}
    copy = ["--model.no_encoder", "copy", "--model.prompt_tokens", "4"]
    assert main(config(tmp_path, captions, steps=20) + copy + ["--out", str(tmp_path / "a")]) == 0
    assert all(torch.equal(p, frozen[name]) for name, p in embedded.model.named_parameters())
    state = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    tower = embedded.text_parameters()
    assert set(state) == {"no_prompts"} | {"tower." + name.replace(".", ":") for name in tower}
    assert state["no_prompts"].shape == (4, embedded.context_length, embedded.token_width)
    assert state["no_prompts"].abs().sum() > 0
    moved = [n for n in tower if not torch.equal(state["tower." + n.replace(".", ":")], tower[n].detach())]
    assert "transformer.resblocks.0.attn.in_proj_weight" in moved and "text_projection" in moved
    trained = Disentangler.from_pretrained(tmp_path / "a")
    assert isinstance(trained, CopiedNoEncoder) and trained.config.no_encoder == "copy"
    assert trained.config.training["lr"] == 3e-4 and trained.config.training["prompt_tokens"] == 4
    with torch.no_grad():
        assert not torch.allclose(trained.no_features(embedded, texts), yes, atol=1e-3)


def test_copied_no_encoder_is_refused_on_another_backbone(tmp_path, captions, embedded, tiny_open_clip):
    adapter = CopiedNoEncoder.from_backbone(embedded, prompts=2, backbone=embedded.identity.to_dict())
    from clap.model import check_compatible

    with pytest.raises(ClapError, match="trained on|features"):
        check_compatible(tiny_open_clip, adapter)
    with pytest.raises(ClapError, match="missing from the backbone or shaped otherwise"):
        adapter.config.text_tower["transformer.resblocks.9.ln_1.weight"] = [1]
        CopiedNoEncoder(adapter.config).no_features(embedded, ["a star"])


def test_ablation_script_runs_end_to_end_shrunk(tmp_path, experiment_script):
    """experiments/clipn/ablation.py on a shrunk setting: every variant at 2 seeds, the OOD report, the summary with
    intervals against CLIP's MCM, and the table."""
    results = tmp_path / "results"
    code = experiment_script("experiments/clipn/ablation.py").run(
        ["--out", str(tmp_path / "run"), "--results", str(results), "--steps", "3", "--seeds", "2",
         "--pairs-per-class", "1", "--test-per-class", "1", "--jobs", "2"])
    assert code == 0
    summary = json.loads((results / "ablation.json").read_text())
    assert list(summary) == ["authors", "ensemble", "single"]
    assert [summary[t]["templates"] for t in summary] == [128, 16, 1]
    variants = summary["authors"]["variants"]
    assert list(variants) == ["CLIPN copy", "CLIPN frozen + head", "CLIPN head only"]
    copy, head = variants["CLIPN copy"], variants["CLIPN head only"]
    assert copy["trainable"] > 100 * head["trainable"] and copy["seeds"] == 2
    for entry in summary.values():
        for row in entry["variants"].values():
            assert set(row["vs"]) == {"CTW AUROC", "CTW FPR95", "ATD AUROC", "ATD FPR95"}
            for baseline, d in row["vs"]["CTW AUROC"].items():  # each rule against each same-logit baseline
                own = entry["baselines"][baseline]["AUROC"]
                assert d["difference"] == pytest.approx(row["mean"]["CTW AUROC"] - own)
                assert d["seeds"] == 2
    report = json.loads((results / "ood_authors.json").read_text())
    assert report["results"]["ood_split"]["named_in_training"] == {}  # the captions never name the held-out shapes
    assert "| CLIPN copy | " in (results / "ablation.md").read_text()


def test_eval_ood_scores_a_copied_no_encoder(tmp_path, embedded, tiny_open_clip, capsys):
    """`clap eval ood` runs CTW and ATD with a copy: a fresh one says "no" as often as "yes" (p_no = 0.5 for every
    class, up to float noise), so neither rule ranks anything (AUROC about 0.5, and the score plots survive scores
    that all coincide); on another backbone it is refused in one line."""
    test = tmp_path / "test"
    render_world(test, "domains", 1, seed=5, spec=WorldSpec(), progress=False)
    fresh = CopiedNoEncoder.from_backbone(embedded, prompts=2, backbone=embedded.identity.to_dict())
    fresh.save_pretrained(tmp_path / "copy")
    argv = ["eval", "ood", "--dataset", str(test), "--adapter", f"CLIPN={tmp_path / 'copy'}", "--no-progress",
            "--n-boot", "100"]
    assert main([*argv, "--out", str(tmp_path / "report")]) == 0
    results = json.loads((tmp_path / "report" / "ood.json").read_text())["results"]
    ood = results["ood"]["CLIPN"]["mean"]
    templates = results["ood_split"]["templates"]["CLIPN (yes and no features summed)"]
    assert len(templates) == 128 and templates[0] == "a bad photo of a {}." and "itap with a {}." in templates
    assert all(ood[rule]["AUROC"] == pytest.approx(0.5, abs=0.1) for rule in ("CTW", "ATD"))
    assert (tmp_path / "report" / "ood_scores.png").is_file() and results["ood_split"]["clipn_templates"] == "authors"
    assert main([*argv, "--clipn-templates", "single", "--out", str(tmp_path / "single")]) == 0
    split = json.loads((tmp_path / "single" / "ood.json").read_text())["results"]["ood_split"]
    assert split["templates"]["CLIPN (yes and no features summed)"] == ["a photo of a {}"]
    fresh.config.backbone = {**embedded.identity.to_dict(), "checksum": "0" * 64}
    fresh.save_pretrained(tmp_path / "other")
    capsys.readouterr()
    assert main([*argv[:4], "--adapter", f"CLIPN={tmp_path / 'other'}", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "trained on" in err and err.count("\n") == 1


def test_readme_quotes_the_committed_ablation_table(tmp_path, experiment_script):
    """ablation.md is rebuilt from the committed ablation.json (--table-only) as committed, every rule's AUROC and
    FPR95 with its difference to each same-logit baseline, and the experiment's README holds it verbatim."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "experiments" / "clipn" / "results"
    (tmp_path / "ablation.json").write_text((committed / "ablation.json").read_text())
    code = experiment_script("experiments/clipn/ablation.py").run(
        ["--results", str(tmp_path), "--table-only"])
    table = (tmp_path / "ablation.md").read_text()
    assert code == 0 and table == (committed / "ablation.md").read_text()
    assert table.startswith("**authors templates (128)") and "| − MSP | − MaxLogit | − Energy | − MCM |" in table
    assert table.strip() in (committed.parent / "README.md").read_text()
