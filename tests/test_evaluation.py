"""Evaluation protocols on the embedded world: features once, zero-shot, few-shot, attacks, probes, reports."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from clap.adapter.disentangler import Disentangler
from clap.cli.main import main
from clap.data.domains import scan_domain_dataset
from clap.data.fewshot import fewshot_indices
from clap.errors import ClapError
from clap.evaluation.protocols import adversarial
from clap.evaluation.protocols import attack_eval
from clap.evaluation.inputs import features
from clap.evaluation.protocols import fewshot
from clap.evaluation.inputs import setup as eval_setup
from clap.evaluation.protocols import zeroshot
from clap.evaluation.protocols.alpha import run_alpha
from clap.evaluation.pipeline.tasks import EvalOptions, alpha_task
from clap.evaluation.protocols.disentangle import run_probe, variance_share
from clap.evaluation.output.report import markdown
from clap.model import CLAPModel, per_model
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec

SPEC = WorldSpec(image_types=("sketch", "clipart", "photograph"))


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalworld")
    render_world(root, "domains", 6, seed=11, spec=SPEC, progress=False)
    return root


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, embedded):
    folder = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)  # before create: its first layer draws from the global generator too
    adapter = Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict(),
                                  classes=list(SPEC.classes), alpha=0.5)
    torch.nn.init.normal_(adapter.projection.weight, std=0.05)
    adapter.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(world_root, adapter_dir):
    return eval_setup.build_setup(world_root, [eval_setup.AdapterSpec("CLAP", str(adapter_dir))], progress=False)


def test_robustness_statistics():
    stats = zeroshot.robustness({"C": 0.8, "PC": 0.9, "CP": 0.7, "NC": 0.6})
    assert stats["R"] == pytest.approx(0.2) and stats["Delta_NC"] == pytest.approx(0.2)
    assert stats["delta"] == pytest.approx(np.std([0.8, 0.9, 0.7]))


def test_zero_shot_matches_a_direct_computation(setup, embedded):
    rows, _ = zeroshot.run_zeroshot(setup)
    clip = rows["CLIP"]["sketch"]
    data = setup.raw["sketch"]
    weights = CLAPModel(embedded).zero_shot_classifier(setup.dataset.classes, ["a photo of a {}"])
    feats = torch.nn.functional.normalize(data.features, dim=-1)
    assert clip["PC"] == pytest.approx(float(((feats @ weights).argmax(1) == data.labels).float().mean()))
    assert set(rows["CLAP"]["mean"]) == {"C", "PC", "CP", "NC", "NC_draw_std", "ENS", "MAX", "R", "R_null", "gap2",
                                         "delta", "Delta_NC"}
    templates = CLAPModel(embedded).zero_shot_classifier(setup.dataset.classes, zeroshot.ENSEMBLE_TEMPLATES)
    assert clip["ENS"] == pytest.approx(float(((feats @ templates).argmax(1) == data.labels).float().mean()))
    assert rows["CLIP"]["mean"]["C"] > 4 / len(setup.dataset.classes)  # well above chance for the tiny CLIP


def test_noise_prompts_differ_from_plain_class_names(embedded):
    model = CLAPModel(embedded)
    plain = model.zero_shot_classifier(["star", "ring"], ["{}"])
    noisy = zeroshot.noise_classifiers(model, ["star", "ring"], draws=3)
    assert noisy.shape == (3, *plain.shape) and not torch.allclose(plain, noisy[0], atol=1e-4)
    assert torch.equal(noisy, zeroshot.noise_classifiers(model, ["star", "ring"], draws=3))
    assert not torch.allclose(noisy[0], noisy[1])  # every draw its own noise


def test_shared_noise_is_one_context_in_front_of_every_class_name(embedded):
    """The authors' form: the same 4 noise embeddings after the start token of every class's prompt."""
    model, names = CLAPModel(embedded), ["star", "ring", "heart"]
    shared = zeroshot.noise_classifiers(model, names, draws=1)[0]
    context = torch.randn(4, embedded.token_width, generator=torch.Generator().manual_seed(zeroshot.NOISE_SEED)) * 0.02
    by_hand = torch.nn.functional.normalize(embedded.encode_text_with_prompt(names, context), dim=-1).T
    assert torch.allclose(shared, by_hand, atol=1e-6)
    per_class = zeroshot.noise_classifiers(model, names, draws=1, form="per-class")[0]
    assert not torch.allclose(shared, per_class, atol=1e-4)


def test_features_are_cached_and_invalidated(world_root, embedded, tmp_path, monkeypatch):
    dataset = scan_domain_dataset(world_root)
    first = features.domain_features(embedded, dataset, tmp_path, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("re-encoded although cached")

    monkeypatch.setattr(features, "encode_paths", fail)
    again = features.domain_features(embedded, dataset, tmp_path, progress=False)
    assert all(torch.equal(first[d].features, again[d].features) for d in first)
    path = dataset.domain_samples("sketch")[0][0]
    path.touch()
    with pytest.raises(AssertionError, match="re-encoded"):
        features.domain_features(embedded, dataset, tmp_path, progress=False)



def test_the_cache_is_chunked_and_an_interrupted_encoding_resumes(world_root, embedded, tmp_path, monkeypatch):
    """A domain is cached in chunks: an encoding stopped in its second chunk keeps the first, a touched file
    re-encodes its own chunk only, and the features equal an encoding without cache in batches of a chunk."""
    dataset = scan_domain_dataset(world_root)
    uncached = features.domain_features(embedded, dataset, batch_size=5, progress=False)
    monkeypatch.setattr(features, "CACHE_CHUNK", 5)
    encoded, original, stop = [], features.encode_paths, [True]

    def counting(backbone, paths, *args, **kwargs):
        if stop[0] and encoded:
            raise KeyboardInterrupt
        encoded.append(list(paths))
        return original(backbone, paths, *args, **kwargs)

    monkeypatch.setattr(features, "encode_paths", counting)
    with pytest.raises(KeyboardInterrupt):
        features.domain_features(embedded, dataset, tmp_path, progress=False)
    stop[0], encoded[:] = False, []
    resumed = features.domain_features(embedded, dataset, tmp_path, progress=False)
    chunks = sum(-(-len(dataset.domain_samples(d)) // 5) for d in dataset.domains)
    assert len(encoded) == chunks - 1  # the first chunk came from the cache
    assert all(torch.equal(uncached[d].features, resumed[d].features) for d in uncached)
    encoded[:] = []
    touched = dataset.domain_samples("sketch")[7][0]
    touched.touch()
    features.domain_features(embedded, dataset, tmp_path, progress=False)
    assert len(encoded) == 1 and touched in encoded[0] and len(encoded[0]) == 5


def test_bad_and_odd_images(tmp_path, embedded):
    folder = tmp_path / "d" / "art" / "star"
    folder.mkdir(parents=True)
    Image.new("L", (40, 40), 128).save(folder / "gray.png")
    Image.new("CMYK", (40, 40), (0, 50, 0, 0)).save(folder / "cmyk.jpg")
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(folder / "alpha.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dataset = scan_domain_dataset(tmp_path / "d")
    out = features.domain_features(embedded, dataset, progress=False)["art"]
    assert len(out.paths) == 3 and len(out.skipped) == 1 and out.skipped[0].endswith("broken.png")
    assert out.features.shape == (3, embedded.embed_dim)


def test_few_shot_uses_the_split_files_choice_and_beats_chance(setup):
    dataset, data = setup.dataset, setup.raw["clipart"]
    idx = fewshot_indices(dataset, "clipart", 2, seed=1)
    from clap.data.fewshot import pick_per_class

    assert [data.paths[i] for i in pick_per_class(data.labels.tolist(), 2, 1, "clipart")] == \
        [dataset.samples[i][0] for i in idx]
    rows, _ = fewshot.run_fewshot(setup, shots=(1, 4), seeds=(0, 1))
    assert rows["CLIP"]["mean"]["4"]["mean"] > 0.3
    assert set(rows["CLAP"]["clipart"]) == {"1", "4"}


def test_probe_regularisation_is_chosen_on_training_shots_only(monkeypatch):
    seen = []
    original = fewshot.fit_probe

    def spy(x, y, seed=0):
        seen.append(len(y))
        return original(x, y, seed)

    monkeypatch.setattr(fewshot, "fit_probe", spy)  # the name few_shot_accuracy calls
    torch.manual_seed(0)
    feats, labels = torch.randn(60, 8), torch.arange(60) % 3
    fewshot.few_shot_accuracy(feats, labels, shots=4, seed=0)
    assert seen == [12]


def leaky_features(shots: int = 2, per_class: int = 10, classes: int = 3):
    """Features where only the probe's own shots are classifiable: every other image sits on another class."""
    from clap.data.fewshot import pick_per_class

    labels = torch.arange(classes * per_class) % classes
    fitted = pick_per_class(labels.tolist(), shots, seed=0, salt="d")
    basis = torch.eye(classes)
    feats = basis[(labels + 1) % classes].clone()  # the wrong class's direction ...
    feats[fitted] = basis[labels[fitted]]  # ... except for the shots
    return feats, labels, fitted


def test_few_shot_scores_the_images_it_was_not_fit_on():
    feats, labels, fitted = leaky_features()
    assert fewshot.few_shot_accuracy(feats, labels, 2, seed=0, domain="d") == 0.0
    leaked = fewshot.few_shot_accuracy(feats, labels, 2, seed=0, domain="d", scoring="whole-domain")
    assert leaked == pytest.approx(len(fitted) / len(labels))  # the paper protocol counts its own shots


@pytest.mark.parametrize("protocol", ["pixel", "paper"])
def test_one_shot_attacks_never_use_the_probe_shots(setup, monkeypatch, protocol):
    from clap.data.fewshot import pick_per_class

    attacked, original = {}, attack_eval._pixels

    def spy(setup, domain, candidates, limit, seed):
        attacked[domain] = candidates
        return original(setup, domain, candidates, 2, seed)

    monkeypatch.setattr(attack_eval, "_pixels", spy)
    attack_eval.run_adversarial(setup, attacks=("FGSM",), protocol=protocol, max_images=2, draws=(0, 1))
    for domain, data in setup.raw.items():
        shots = {i for draw in (0, 1) for i in pick_per_class(data.labels.tolist(), 1, draw, salt=domain)}
        if protocol == "pixel":
            assert not shots & set(attacked[domain].tolist()) and len(attacked[domain]) == len(data.paths) - len(shots)
        else:  # the authors attack the whole domain, shots included
            assert len(attacked[domain]) == len(data.paths)


def test_the_attacked_one_shot_head_is_the_mean_over_its_shot_draws(setup):
    """One probe per shot draw (a bootstrap level, like the few-shot task's); draws that agree give exactly the
    one-draw statistics, resamples included."""
    from clap.evaluation.statistics.resample import OBSERVED, Resamples

    def attacked(draws):
        return attack_eval.run_adversarial(setup, attacks=("FGSM",), epsilons=(4 / 255,), max_images=3, draws=draws)

    (one, single), (_, twice), (three, drawn) = attacked((0,)), attacked((0, 0)), attacked((0, 1, 2))
    assert (single.levels, drawn.levels) == ({"shot draws": 1}, {"shot draws": 3})
    resamples = Resamples(120, 7)
    for model in setup.models:
        a, b = single.statistics[model](resamples), twice.statistics[model](resamples)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert drawn.statistics[model](OBSERVED).keys() == a.keys()
    # the zero-shot head is not drawn: the same per draw count; the 1-shot head's probes differ between draws
    assert three["CLAP"]["zero-shot C"]["sketch"] != {} and any(
        three[m]["1-shot linear"]["mean"] != one[m]["1-shot linear"]["mean"] for m in setup.models)


@pytest.fixture(scope="module")
def attack_target(setup):
    model = setup.models["CLAP"]
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    return adversarial.AttackTarget(model, adversarial.zero_shot_head(weights))


@pytest.fixture(scope="module")
def batch(setup):
    data = setup.raw["photograph"]
    tf = setup.backbone.eval_transform
    pixels = torch.stack([tf(Image.open(p).convert("RGB")) for p in data.paths[:12]])
    return pixels, data.labels[:12]


def test_fgsm_and_pgd_match_torchattacks(attack_target, batch):
    import torchattacks

    x, y = batch
    ours = adversarial.fgsm(attack_target, x, y, 8 / 255)
    theirs = torchattacks.FGSM(attack_target, eps=8 / 255)(x, y)
    # One step: identical but where a vanishing gradient component's sign depends on the reduction order
    # (the thread count; with one thread 7 pixels in a million differ). A wrong sign or step moves most pixels.
    assert ((ours - theirs).abs() > 1e-6).float().mean() < 1e-4
    ours = adversarial.pgd(attack_target, x, y, 8 / 255, steps=5, random_start=False)
    theirs = torchattacks.PGD(attack_target, eps=8 / 255, alpha=0.8 / 255, steps=5, random_start=False)(x, y)
    # The same steps wherever the gradient is not vanishingly small: torchattacks takes the batch's mean loss,
    # this package the sum of per-input losses, so the backward passes round differently and a component near
    # 0 can flip its sign (with this seeded adapter: 0.04% of pixels). A wrong step size, projection or sign
    # moves most pixels. (This test once failed two runs in three: the fixture's adapter was seeded only
    # after its first layer had drawn from the unseeded global generator, so every run attacked another model.)
    assert ((ours - theirs).abs() > 1e-5).float().mean() < 0.01
    assert torch.equal(attack_target(ours).argmax(1), attack_target(theirs).argmax(1))


def test_autoattack_is_at_most_pgd_on_the_same_images(attack_target, batch):
    """AutoAttack (torchattacks' standard L-inf version) stays in the ball and leaves no more images right than
    PGD-20 at the same eps: a stronger attack, so a gain that holds under PGD must hold under it too."""
    x, y = batch[0][:6], batch[1][:6]  # Square's 5000 queries on the images APGD leaves right: a few suffice
    eps = 2 / 255
    hits = adversarial.robust_correct(attack_target, x, y, ("PGD-20", adversarial.AUTOATTACK), (eps,))
    assert hits[(adversarial.AUTOATTACK, eps)].sum() <= hits[("PGD-20", eps)].sum() < hits["clean"].sum()
    adv = adversarial.autoattack(attack_target, x, y, eps, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_autoattack_without_torchattacks_is_one_line(attack_target, batch, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(ClapError, match="AutoAttack needs torchattacks .*pip install --no-deps torchattacks"):
        adversarial.autoattack(attack_target, *batch, 2 / 255, torch.Generator())


def test_attacks_stay_in_the_ball_and_hurt(attack_target, batch):
    x, y = batch
    gen = torch.Generator().manual_seed(0)
    for name in adversarial.ATTACKS:
        adv = adversarial.attack(name, attack_target, x, y, 8 / 255, gen, (0.0, 1.0))
        assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    accs = adversarial.robust_accuracies(attack_target, x, y, eps=8 / 255)
    assert accs["PGD-20"] <= accs["FGSM"] + 1e-9 and accs["PGD-20"] < accs["clean"]


def test_attack_sweep_is_each_setting_attacked_alone(attack_target, batch):
    x, y = batch
    eps = (2 / 255, 8 / 255)
    sweep = adversarial.attack_sweep(attack_target, x, y, adversarial.ATTACKS, eps, torch.Generator().manual_seed(3),
                                     (0.0, 1.0))
    alone = torch.Generator().manual_seed(3)  # the random starts are drawn in the order of the settings
    for name in adversarial.ATTACKS:
        for e in eps:
            one = adversarial.attack(name, attack_target, x, y, e, alone, (0.0, 1.0))
            differ = ((sweep[(name, e)] - one).abs() > 1e-6).float().mean().item()
            assert differ < (1e-4 if name == "FGSM" else 0.1), (name, e, differ)  # FGSM: sign of a ~0 gradient
            assert (sweep[(name, e)] - x).abs().max() <= e + 1e-6


def test_the_paper_protocol_is_the_authors_attack(setup, batch, monkeypatch):
    """Cross-entropy on unscaled cosines, CW with confidence 50, and a clean row through the same clamp of
    the normalised tensor as the attacked ones (the clamp alone changes the images)."""
    model = setup.models["CLAP"]
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    target = adversarial.AttackTarget(model, adversarial.zero_shot_head(weights, adversarial.LOGIT_SCALE["paper"]),
                                      "paper")
    assert target.kappa == 50.0 and adversarial.AttackTarget(model, target.head).kappa == 0.0
    pixels, labels = batch
    hits = adversarial.robust_correct(target, pixels, labels, ("FGSM",), (1 / 255,))
    clamped = model.backbone.normalize(pixels).clamp(0, 1)
    with torch.no_grad():
        assert np.array_equal(hits["clean"], (target(clamped).argmax(1) == labels).numpy())
    heads = []
    monkeypatch.setattr(attack_eval, "zero_shot_head", lambda w, scale: heads.append(scale) or (lambda f: f @ w))
    for protocol in ("paper", "pixel"):
        attack_eval._zero_shot_head(setup, model, protocol)
    assert heads == [1.0, 100.0]


def test_cw_margin():
    logits = torch.tensor([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]])
    assert adversarial.cw_margins(logits, torch.tensor([0, 0])).tolist() == [-1.0, 0.0]


def test_paper_protocol_perturbs_normalised_tensors(setup, batch):
    model = setup.models["CLIP"]
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    paper = adversarial.AttackTarget(model, adversarial.zero_shot_head(weights), protocol="paper")
    x, y = batch
    with torch.no_grad():
        direct = adversarial.AttackTarget(model, adversarial.zero_shot_head(weights))(x)
        assert torch.allclose(paper(model.backbone.normalize(x)), direct, atol=1e-5)
    accs = adversarial.robust_accuracies(paper, x, y, attacks=("FGSM",))
    assert set(accs) == {"clean", "FGSM"}


def test_variance_share():
    x = torch.cat([torch.zeros(10, 3), torch.ones(10, 3)])
    assert variance_share(x, ["a"] * 10 + ["b"] * 10) == pytest.approx(1.0)
    torch.manual_seed(0)
    assert variance_share(torch.randn(400, 16), ["a", "b"] * 200) < 0.02


def test_probe_measures_cover_the_world_factors(setup):
    rows = run_probe(setup)
    assert set(rows["CLIP"]) == {"class_name", "colour", "size", "image_type", "art_style"}
    for measures in rows["CLIP"].values():
        assert set(measures) == {"recognition", "variance_share", "probe"}
    assert rows["CLIP"]["image_type"]["probe"] > 0.6


def test_alpha_sweep_and_reports(setup, tmp_path):
    output = alpha_task(setup, EvalOptions(alphas=[0.0, 1.0]), None)
    sweep = output.rows["alpha"]
    assert set(sweep) == {"CLAP", "plot"} and sweep["plot"] == "alpha_sweep.png"
    output.figures["alpha_sweep.png"](tmp_path)
    assert (tmp_path / "alpha_sweep.png").is_file() and run_alpha(setup, [0.0, 1.0]) == {"CLAP": sweep["CLAP"]}
    rows, _ = zeroshot.run_zeroshot(setup)
    assert sweep["CLAP"]["0"]["C"] == pytest.approx(rows["CLIP"]["mean"]["C"])  # alpha 0 is the plain backbone
    text = markdown({"alpha": sweep, "zeroshot": rows})
    assert "| CLAP | 0 |" in text and "ZS(NC)" in text


def test_cli_eval_zeroshot_and_tsne(world_root, adapter_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "tsne", "--dataset", str(world_root), "--adapter", f"CLAP={adapter_dir}@0.3",
                 "--out", str(out), "--no-progress"]) == 0
    assert (out / "tsne_CLIP.png").is_file() and (out / "tsne_CLAP.png").is_file()
    assert main(["eval", "zeroshot", "--dataset", str(world_root), "--adapter", f"CLAP={adapter_dir}@0.3",
                 "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "zeroshot.json").read_text())
    assert report["models"]["CLAP"]["alpha"] == 0.3 and report["backbone"]["model"] == "tiny-clip-world"
    assert set(report["results"]["zeroshot"]) == {"CLIP", "CLAP"}
    assert "| sketch | CLAP |" in capsys.readouterr().out
    from clap.backbones.loading import file_checksum

    assert report["models"]["CLAP"]["adapter"] == str(adapter_dir.resolve())
    assert report["models"]["CLAP"]["adapter_sha256"] == file_checksum(adapter_dir / "adapter_model.safetensors")
    assert {"torch", "open_clip_torch", "transformers", "lightning"} <= set(report["versions"])
    assert report["protocol"]["fewshot_scoring"] == "held-out" and "held-out" in (out / "zeroshot.md").read_text()


def test_cli_eval_refuses_to_overwrite_a_report(world_root, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["eval", "zeroshot", "--dataset", str(world_root), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = (out / "zeroshot.json").read_bytes()
    assert main(args) == 2
    assert "exists from an earlier run" in capsys.readouterr().err
    assert (out / "zeroshot.json").read_bytes() == before
    assert main(args + ["--overwrite", "--protocol", "paper"]) == 0
    assert json.loads((out / "zeroshot.json").read_text())["protocol"]["fewshot_scoring"] == "whole-domain"


@pytest.mark.parametrize("spec, message", [("CLAP", "NAME=PATH"), ("CLAP=/nope", "neither an existing folder"),
                                           ("CLAP=x@high", "not a finite number >= 0")])
def test_cli_eval_bad_adapters(world_root, tmp_path, capsys, spec, message):
    assert main(["eval", "zeroshot", "--dataset", str(world_root), "--adapter", spec, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_class_mismatch_is_refused(world_root, embedded, tmp_path):
    adapter = Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict(), classes=["dog", "cat"])
    adapter.save_pretrained(tmp_path / "a")
    with pytest.raises(ClapError, match="trained for 2 classes"):
        eval_setup.build_setup(world_root, [eval_setup.AdapterSpec("X", str(tmp_path / "a"))], progress=False)


def test_pgd_robust_accuracy_falls_as_eps_grows(setup):
    sweep = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    out, measure = attack_eval.run_adversarial(setup, attacks=("PGD-20",), epsilons=sweep, max_images=8)
    for model, heads in out.items():
        for head, per_domain in heads.items():
            mean = per_domain["mean"]
            accs = [mean["clean"]] + [mean["PGD-20"][adversarial.eps_label(e)] for e in sweep]
            assert all(b <= a + 1e-9 for a, b in zip(accs, accs[1:])), (model, head, accs)
    from clap.evaluation.statistics.resample import OBSERVED

    settings = ["clean", *[f"PGD-20@{adversarial.eps_label(e)}" for e in sweep]]
    assert set(measure.statistics["CLIP"](OBSERVED)) == {f"{h}/{k}" for h in attack_eval.ADV_HEADS for k in settings}


def with_alpha_zero(setup) -> dict[str, CLAPModel]:
    """CLIP, the trained adapter at alpha 0 (the frozen backbone again) and at alpha 1 (as far from CLIP as
    it goes, so that its results differ from CLIP's even on a few attacked images)."""
    adapter = setup.models["CLAP"].adapter
    return {"CLIP": setup.models["CLIP"], "alpha 0": CLAPModel(setup.backbone, adapter, alpha=0.0),
            "CLAP": CLAPModel(setup.backbone, adapter, alpha=1.0)}


def test_a_model_that_is_the_frozen_backbone_is_attacked_once_with_the_same_results(setup, monkeypatch):
    models = with_alpha_zero(setup)
    calls, original = [], attack_eval.robust_correct
    monkeypatch.setattr(attack_eval, "robust_correct", lambda *a, **k: calls.append(1) or original(*a, **k))

    def attacked() -> tuple[dict, dict, int]:
        from clap.evaluation.statistics.resample import OBSERVED

        calls.clear()
        local = dataclasses.replace(setup, models=models)
        out, measure = attack_eval.run_adversarial(local, attacks=("PGD-20",), epsilons=(2 / 255,), max_images=4)
        return out, {m: f(OBSERVED) for m, f in measure.statistics.items()}, len(calls)

    shared, shared_hits, shared_calls = attacked()
    monkeypatch.setattr(CLAPModel, "is_frozen", lambda self: False)
    separate, separate_hits, separate_calls = attacked()
    heads = len(attack_eval.ADV_HEADS) * len(setup.dataset.domains)
    assert (shared_calls, separate_calls) == (2 * heads, 3 * heads)
    assert shared == separate and shared["alpha 0"] == shared["CLIP"] != shared["CLAP"]
    assert all(np.array_equal(shared_hits[m][k], separate_hits[m][k]) for m in models for k in shared_hits[m])


def test_per_model_computes_the_frozen_backbone_once_and_copies_it(setup):
    models = with_alpha_zero(setup)
    seen = []
    out = per_model(models, lambda m: seen.append(m) or {"alpha": m.alpha})
    assert seen == [models["CLIP"], models["CLAP"]] and out == {"CLIP": {"alpha": 0.0}, "alpha 0": {"alpha": 0.0},
                                                         "CLAP": {"alpha": 1.0}}
    assert out["alpha 0"] is not out["CLIP"]  # a copy: editing one model's rows leaves the other's alone


@pytest.mark.parametrize("text, value", [("8/255", 8 / 255), ("0.5", 0.5)])
def test_eps_parsing(text, value):
    assert adversarial.parse_eps(text) == pytest.approx(value)
    assert adversarial.eps_label(8 / 255) == "8/255"


@pytest.mark.parametrize("text", ["0", "2", "x/255", "1/0", "-1/255"])
def test_bad_eps_is_refused(text):
    with pytest.raises(ValueError, match="epsilon"):
        adversarial.parse_eps(text)


def test_alpha_is_chosen_on_validation_data_only(world_root, adapter_dir, tmp_path, monkeypatch):
    """`clap select-alpha` sees only the validation set; `@auto` at test time only reads the record."""
    import shutil

    from clap.evaluation.protocols import alpha as alpha_module

    adapter = tmp_path / "adapter"
    shutil.copytree(adapter_dir, adapter)
    val, test = tmp_path / "val", tmp_path / "test"
    render_world(val, "domains", 2, seed=99, spec=SPEC, progress=False)
    shutil.copytree(world_root, test)
    seen, original = [], alpha_module.best_alpha

    def spy(model, features, classnames, grid=alpha_module.ALPHA_GRID):
        seen.extend(str(p) for data in features.values() for p in data.paths)
        return original(model, features, classnames, grid)

    monkeypatch.setattr(alpha_module, "best_alpha", spy)
    assert main(["select-alpha", str(adapter), "--val", str(val), "--no-progress"]) == 0
    recorded = Disentangler.from_pretrained(adapter).config
    assert seen and all(p.startswith(str(val)) for p in seen)
    assert recorded.alpha_selection["validation"] == str(val) and recorded.alpha == recorded.alpha_selection["alpha"]
    seen.clear()  # choosing again on the same validation set works (only a test set refuses its own selection)
    assert main(["select-alpha", str(adapter), "--val", str(val), "--no-progress"]) == 0
    assert Disentangler.from_pretrained(adapter).config.alpha_selection == recorded.alpha_selection
    assert main(["eval", "alpha", "--dataset", str(test), "--adapter", f"CLAP={adapter}@auto", "--out",
                 str(tmp_path / "r"), "--no-progress", "--alphas", "0", "0.5"]) == 0
    report = json.loads((tmp_path / "r" / "alpha.json").read_text())
    assert report["models"]["CLAP"]["alpha"] == recorded.alpha and len(seen) == len(set(seen))  # no re-selection
    assert (tmp_path / "r" / "alpha_sweep.png").is_file()


def test_auto_alpha_needs_a_selection(world_root, adapter_dir, tmp_path, capsys):
    assert main(["eval", "zeroshot", "--dataset", str(world_root), "--adapter", f"CLAP={adapter_dir}@auto",
                 "--out", str(tmp_path), "--no-progress"]) == 2
    assert "clap select-alpha" in capsys.readouterr().err


def test_repeated_adapter_names_are_seeds_with_statistics(world_root, adapter_dir, tmp_path, capsys):
    args = ["eval", "zeroshot", "--dataset", str(world_root), "--out", str(tmp_path / "r"), "--no-progress"]
    for alpha in ("0.2", "0.4", "0.6"):
        args += ["--adapter", f"CLAP={adapter_dir}@{alpha}"]
    assert main(args) == 0
    report = json.loads((tmp_path / "r" / "zeroshot.json").read_text())
    assert set(report["results"]["zeroshot"]) == {"CLIP", "CLAP#1", "CLAP#2", "CLAP#3"}
    seeds = report["statistics"]["seeds"]["zeroshot"]["CLAP"]
    members = [report["results"]["zeroshot"][f"CLAP#{k}"]["mean"]["C"] for k in (1, 2, 3)]
    assert seeds["mean"]["mean"]["C"] == pytest.approx(np.mean(members))
    assert seeds["std"]["mean"]["C"] == pytest.approx(np.std(members, ddof=1))
    diff = report["statistics"]["differences"]["zeroshot"]["CLAP"]["C"]
    assert diff["low"] <= diff["difference"] <= diff["high"]
    out = capsys.readouterr().out
    assert "| sketch | CLAP |" in out and " ± " in out and "Differences to CLIP" in out


def test_every_task_has_a_protocol():
    from clap.cli.eval import TASKS
    from clap.evaluation.pipeline import tasks

    # one table: anomaly (on scenes with label maps) is a task like the others
    assert set(tasks.TASKS) == set(TASKS) - {"all"} and set(tasks.CLOSED_SET) <= set(tasks.TASKS)


def test_user_templates_replace_the_pc_prompt_and_are_recorded(world_root, tmp_path, capsys):
    """CLIP_benchmark's "a photo of a {c}." (with the period the tiny CLIP's captions never had) changes ZS(PC)
    and only it, and the report says which templates were used; a file of templates works the same way."""
    def run(out: str, *extra: str) -> dict:
        assert main(["eval", "zeroshot", "--dataset", str(world_root), "--out", str(tmp_path / out), "--no-progress",
                     "--n-boot", "100", *extra]) == 0
        return json.loads((tmp_path / out / "zeroshot.json").read_text())["results"]

    plain, dotted = run("plain"), run("dotted", "--templates", "a photo of a {c}.")
    (tmp_path / "t.txt").write_text("a photo of a {c}.\n\n")
    from_file = run("file", "--templates", str(tmp_path / "t.txt"))
    before, after = plain["zeroshot"]["CLIP"]["mean"], dotted["zeroshot"]["CLIP"]["mean"]
    assert after["PC"] != before["PC"] and after["C"] == before["C"] and after["CP"] == before["CP"]
    assert dotted["prompt_templates"]["PC"] == ["a photo of a {c}."] == from_file["prompt_templates"]["PC"]
    assert plain["prompt_templates"]["PC"] == ["a photo of a {}"]
    assert from_file["zeroshot"]["CLIP"]["mean"]["PC"] == after["PC"]
    assert main(["eval", "zeroshot", "--dataset", str(world_root), "--out", str(tmp_path / "bad"),
                 "--templates", "a photo"]) == 2
    assert "one '{}', or '{c}' once or more" in capsys.readouterr().err
