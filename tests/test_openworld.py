"""Open-world protocols: OOD scores and metrics, prompt ensembles, openness, REPE, and `clap eval ood|openness`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.nn import functional as F

from clap.cli.main import main
from clap.data_gen.world.export import caption_corpus, render_world
from clap.data_gen.world.render import WorldSpec
from clap.evaluation.protocols import ood_scores
from clap.evaluation.protocols import openness
from clap.evaluation.protocols import zeroshot
from clap.evaluation.protocols.repe import Repe, names_class, read_captions
from clap.model import CLAPModel
from clap.prompts.classes import preset_classes, preset_groups, world_held_out


def test_metrics_agree_with_sklearn_and_a_hand_computation():
    rng = np.random.default_rng(0)
    ids, oods = rng.normal(1, 1, 200), rng.normal(0, 1, 300)
    m = ood_scores.detection_metrics(ids, oods)
    labels = np.r_[np.ones(200), np.zeros(300)]
    assert m["AUROC"] == pytest.approx(roc_auc_score(labels, np.r_[ids, oods]))
    assert m["AUPR_in"] == pytest.approx(average_precision_score(labels, np.r_[ids, oods]))
    assert m["AUPR_out"] == pytest.approx(average_precision_score(1 - labels, -np.r_[ids, oods]))
    threshold = np.sort(ids)[::-1][int(np.ceil(0.95 * 200)) - 1]  # accepts exactly 190 of 200 ID scores
    assert m["FPR95"] == pytest.approx(np.mean(oods >= threshold))


def test_fpr95_counts_ties_at_the_threshold():
    ids = np.array([5.0] * 19 + [1.0])  # 95% of ID accepted at threshold 5
    oods = np.array([5.0, 5.0, 0.0, 0.0])  # two OOD tie with it: both accepted
    assert ood_scores.detection_metrics(ids, oods)["FPR95"] == pytest.approx(0.5)
    assert ood_scores.detection_metrics(np.array([2.0, 1.0]), np.array([1.0, 0.0]))["FPR95"] == pytest.approx(0.5)


def test_scores_by_hand():
    cos = torch.tensor([[0.3, 0.1], [0.2, 0.2]])
    assert ood_scores.max_logit(cos).tolist() == pytest.approx([30.0, 20.0])
    assert ood_scores.energy(cos)[1] == pytest.approx(0.01 * np.log(2 * np.exp(20.0)))
    assert ood_scores.mcm(cos, 1.0)[1] == pytest.approx(0.5)


def test_ood_prompt_score_by_hand():
    """Softmax over K = 2 classes and Q = 1 outlier concept at T = 0.01; the best of the ID channels."""
    cos, extra = torch.tensor([[0.30, 0.20], [0.20, 0.21]]), torch.tensor([[0.10], [0.25]])
    e = np.exp(np.array([[30.0, 20.0, 10.0], [20.0, 21.0, 25.0]]))
    expected = (e[:, :2] / e.sum(1, keepdims=True)).max(1)
    assert ood_scores.ood_prompt_score(cos, extra).tolist() == pytest.approx(expected.tolist())
    # image 2 looks most like the concept: its ID confidence falls below image 1's, as an outlier's should
    assert ood_scores.ood_prompt_score(cos, extra)[1] < 0.02 < 0.99 < ood_scores.ood_prompt_score(cos, extra)[0]


def test_max_logit_ensemble_with_one_prompt_is_the_plain_cosine():
    feats = F.normalize(torch.randn(6, 8), dim=-1)
    prompts = F.normalize(torch.randn(3, 8), dim=-1)
    plain = feats @ prompts.T
    assert torch.allclose(ood_scores.ensemble_cosines(feats, prompts, [0, 1, 2], 3), plain)
    assert torch.allclose(zeroshot.class_scores(feats, prompts.T[None]), plain)
    two = ood_scores.ensemble_cosines(feats, torch.cat([prompts, -prompts]), [0, 1, 2, 0, 1, 2], 3)
    assert torch.allclose(two, plain.abs())  # the max over a prompt and its opposite


def test_max_logit_ensemble_is_each_class_best_template_without_every_template_at_once():
    feats = F.normalize(torch.randn(50, 8), dim=-1)
    templates = F.normalize(torch.randn(5, 8, 4), dim=1)  # [T, D, C]
    best = torch.stack([feats @ t for t in templates]).amax(dim=0)
    assert torch.equal(zeroshot.class_scores(feats, templates), best)


def test_ensemble_cosines_are_made_a_block_of_images_at_a_time(monkeypatch):
    feats = F.normalize(torch.randn(23, 8), dim=-1)
    prompts = F.normalize(torch.randn(6, 8), dim=-1)
    owner = [0, 1, 2, 0, 1, 2]
    whole = ood_scores.ensemble_cosines(feats, prompts, owner, 3)
    monkeypatch.setattr(ood_scores, "ENSEMBLE_ROWS", 5)
    assert torch.equal(ood_scores.ensemble_cosines(feats, prompts, owner, 3), whole)
    assert torch.equal(whole, (feats @ prompts.T).reshape(23, 2, 3).amax(dim=1))


def test_a_held_out_split_copies_no_features_and_scores_as_copies_would():
    """Each domain's ID and held-out rows stay views of its raw features until scored, one domain at a time."""
    from clap.evaluation.inputs.features import DomainFeatures
    from clap.evaluation.protocols.ood import held_out_split, ood_scores_of

    raw = {d: DomainFeatures(torch.randn(30, 8), torch.arange(30) % 3, []) for d in "ab"}
    id_sets, ood_sets, id_classes = held_out_split(raw, ["x", "y", "z"], ["z"])
    assert id_classes == ["x", "y"]
    assert all(id_sets[d].features is raw[d].features and ood_sets[d].features is raw[d].features for d in raw)
    scorer = lambda x: {"norm": x.norm(dim=1).numpy()}  # noqa: E731
    scores = ood_scores_of(scorer, id_sets, ood_sets)
    for d, data in raw.items():
        held = data.labels == 2
        np.testing.assert_array_equal(scores[d]["norm"]["id"], data.features[~held].norm(dim=1).numpy())
        np.testing.assert_array_equal(scores[d]["norm"]["ood"], data.features[held].norm(dim=1).numpy())


def test_class_merging_scores_a_group_as_one_class():
    owner, n = ood_scores.merged_owner(["a", "b", "c", "d"], [["b", "d"]])
    assert owner == [0, 1, 2, 1] and n == 3
    feats = torch.eye(4)
    merged = ood_scores.ensemble_cosines(feats, torch.eye(4), owner, n)
    assert merged[3].tolist() == [0.0, 1.0, 0.0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("openworld")
    render_world(root, "domains", 2, seed=5, spec=WorldSpec(image_types=("sketch", "photograph")), progress=False)
    return root


@pytest.fixture(scope="module")
def features(world, embedded):
    from clap.data.domains import scan_domain_dataset
    from clap.evaluation.inputs.features import domain_features

    dataset = scan_domain_dataset(world)
    return dataset, domain_features(embedded, dataset, progress=False)


def _openness_by_loops(scores, labels, groups, orders, seed):
    """The authors' incremental evaluation written as loops over images (the reference)."""
    def acc(classes_scored, vocab):
        rows = [i for i in range(len(labels)) if labels[i] in classes_scored]
        return np.mean([vocab[int(np.argmax(scores[i, vocab]))] == labels[i] for i in rows])

    rng, e_runs, s_runs, closed = np.random.default_rng(seed), [], [], []
    for t, target in enumerate(groups):
        closed.append(acc(target, target))
        others = [g for i, g in enumerate(groups) if i != t]
        for _ in range(orders):
            vocab, e, s_ = list(target), [acc(target, target)], [np.mean([acc([c], target) for c in target])]
            for k in rng.permutation(len(others)):
                vocab = vocab + others[k]
                e.append(acc(vocab, vocab))
                s_.append(np.mean([acc([c], vocab) for c in target]))
            e_runs.append(e)
            s_runs.append(s_)
    return {"Acc-C": np.mean(closed), "Acc-E": np.mean(e_runs), "Acc-S": np.mean(np.array(s_runs)[:, 1:])}


def test_openness_measures_equal_the_loops_of_the_protocol():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 12, 150)  # unbalanced classes
    scores = rng.normal(size=(150, 12)) + 1.5 * np.eye(12)[labels]
    groups = [[0, 1, 2], [3, 4, 5, 6], [7, 8], [9, 10, 11]]
    row = openness.openness(torch.from_numpy(scores).float(), torch.from_numpy(labels), torch.eye(12), groups,
                           orders=3, seed=4)  # features @ identity weights: the scores themselves
    reference = _openness_by_loops(scores, labels, groups, 3, 4)
    assert {k: row[k] for k in reference} == pytest.approx(reference)


def test_openness_bootstrap_keeps_class_sizes_and_matches_the_stratified_standard_error():
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(np.repeat(np.arange(16), 25))
    base = rng.normal(size=(400, 16)) + 1.0 * np.eye(16)[labels]
    better = base + 0.8 * np.eye(16)[labels] * (rng.random((400, 1)) < 0.5)
    groups = [list(range(i, i + 4)) for i in range(0, 16, 4)]
    protocol = openness.Protocol.build(labels, groups, orders=2, seed=0)
    from clap.evaluation.statistics.resample import Resamples

    weights = Resamples(2000, seed=1).weights("classes:d", len(labels), labels.numpy())
    draws = [protocol.measures(protocol.contributions(torch.from_numpy(s).float(), labels), weights)["Acc-C"]
             for s in (base, better)]
    counts = weights[:5]
    assert all(np.bincount(labels.numpy(), weights=row).tolist() == [25.0] * 16 for row in counts)
    # Acc-C with equal groups is the mean over images of being right within one's own group: a mean of
    # per-image differences, whose stratified standard error is known
    own = [next(g for g in groups if c in g) for c in labels.tolist()]
    hit = [np.array([g[int(np.argmax(s[i, g]))] == labels[i] for i, g in enumerate(own)], float)
           for s in (base, better)]
    d = hit[1] - hit[0]
    se = np.sqrt(sum(25 * d[labels.numpy() == c].var() for c in range(16))) / 400
    assert np.std(draws[1] - draws[0]) == pytest.approx(se, rel=0.15)
    assert np.mean(draws[1] - draws[0]) == pytest.approx(d.mean(), abs=0.2 * se)


def test_openness_differences_pair_models_on_the_same_resamples(features, embedded):
    from types import SimpleNamespace

    from clap.adapter.disentangler import Disentangler
    from clap.evaluation.statistics.resample import Resamples
    from clap.evaluation.statistics.stats import differences

    dataset, raw = features
    adapter = Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict(), alpha=0.5)
    torch.manual_seed(0)
    torch.nn.init.normal_(adapter.projection.weight, std=0.05)
    models = {"CLIP": CLAPModel(embedded), "SAME#1": CLAPModel(embedded), "SAME#2": CLAPModel(embedded),
              "OTHER": CLAPModel(embedded, adapter)}
    setup = SimpleNamespace(models=models, raw=raw, dataset=dataset)
    groups = openness.check_groups(list(preset_groups("world").values()), dataset.classes)
    results, measures = openness.run_openness(setup, groups, orders=2)
    n = sum(len(d.labels) for d in raw.values())
    diff = differences("CLIP", measures, Resamples(300))["differences"]["openness"]
    assert set(diff) == {"SAME", "OTHER"} and set(diff["OTHER"]) == set(openness.SCALARS)
    assert all(d["difference"] == d["low"] == d["high"] == 0.0 and d["contains_zero"] for d in diff["SAME"].values())
    other = diff["OTHER"]["Acc-E"]
    rows = results["openness"]
    assert other["difference"] == pytest.approx(rows["OTHER"]["mean"]["Acc-E"] - rows["CLIP"]["mean"]["Acc-E"])
    assert other["low"] < other["high"] and other["n"] == n


def test_repe_effect_has_an_interval_inside_every_model_clip_included(features, embedded):
    """REPE on minus off, per model on the same resamples: the point is the two tables' difference; a weight of 0
    (REPE changes nothing) gives exactly 0; the models are not compared with each other there."""
    from types import SimpleNamespace

    from clap.evaluation.statistics.resample import Resamples
    from clap.evaluation.statistics.stats import REPE, differences

    dataset, raw = features
    model = CLAPModel(embedded)
    captions = caption_corpus(2, 11)
    groups = openness.check_groups(list(preset_groups("world").values()), dataset.classes)
    repe = {"CLIP": Repe.encode(model, captions, weight=0.5), "NONE": Repe.encode(model, captions, weight=0.0)}
    setup = SimpleNamespace(models={"CLIP": model, "NONE": CLAPModel(embedded)}, raw=raw, dataset=dataset)
    scored = openness.scored_models(setup, repe)
    results, measures = openness.run_openness(setup, groups, orders=2, scored=scored)
    effect = differences("CLIP", measures, Resamples(300))["differences"]["openness_repe"]
    assert set(effect) == {"CLIP", "NONE"}
    assert set(effect["CLIP"]) == {f"{k}{REPE} (vs {k}, same model)" for k in openness.SCALARS}
    acc_e = effect["CLIP"][f"Acc-E{REPE} (vs Acc-E, same model)"]
    plain, enhanced = results["openness"]["CLIP"]["mean"]["Acc-E"], results["openness_repe"]["CLIP"]["mean"]["Acc-E"]
    assert acc_e["difference"] == pytest.approx(enhanced - plain) and acc_e["difference"] != 0
    assert acc_e["low"] < acc_e["high"]
    assert all(d["difference"] == d["low"] == d["high"] == 0.0 for d in effect["NONE"].values())


def test_openness_start_and_end_are_plain_zero_shot_accuracies(features, embedded):
    dataset, raw = features
    model = CLAPModel(embedded)
    data = raw["sketch"]
    feats = model.adapted(data.features)
    weights = model.zero_shot_classifier(dataset.classes, ["a photo of a {}"])
    groups = openness.check_groups(list(preset_groups("world").values()), dataset.classes)
    row = openness.openness(feats, data.labels, weights, groups, orders=2, seed=0)
    closed = []
    for g in groups:  # no vocabulary added: zero-shot accuracy among the target's own classes
        rows = torch.isin(data.labels, torch.tensor(g))
        sub = weights[:, g]
        predicted = torch.tensor(g)[(feats[rows] @ sub).argmax(1)]
        closed.append(float((predicted == data.labels[rows]).float().mean()))
    assert row["Acc-C"] == pytest.approx(np.mean(closed))
    assert row["S_curve"][0] == pytest.approx(np.mean(closed))  # balanced classes: macro = micro
    assert row["E_curve"][-1] == pytest.approx(zeroshot.accuracy(feats, weights, data.labels))
    assert row["full"] == pytest.approx(zeroshot.accuracy(feats, weights, data.labels))
    assert len(row["E_curve"]) == len(groups) and row["Acc-E"] <= max(row["E_curve"])


def test_groups_must_cover_every_class_once():
    from clap.errors import ClapError

    with pytest.raises(ClapError, match="miss"):
        openness.check_groups([["a"], ["b"]], ["a", "b", "c"])
    with pytest.raises(ClapError, match="more than one group"):
        openness.check_groups([["a", "b"], ["b", "c"]], ["a", "b", "c"])
    with pytest.raises(ClapError, match="not classes"):
        openness.check_groups([["a", "z"]], ["a"])


def test_repe_with_zero_weight_is_the_plain_feature(embedded):
    model = CLAPModel(embedded)
    classes = ["star", "ring"]
    plain = model.zero_shot_classifier(classes, ["a photo of a {}"]).T
    captions = ["a red star on the table", "my ring !", "a star", "look at this cloud"]
    assert torch.equal(Repe.encode(model, captions, weight=0.0).enhance(plain, classes), plain)
    full = Repe.encode(model, captions, weight=1.0, k=1).enhance(plain, classes)
    ring = model.encode_text(["my ring !"], normalize=True)[0]
    assert torch.allclose(full[1], ring, atol=1e-6)  # the only caption naming "ring"
    assert not torch.allclose(full[0], plain[0])


def test_repe_filter_and_caption_files(tmp_path):
    assert names_class("a small x mark , photo", "x mark") and not names_class("a box", "x mark")
    assert not names_class("starfish", "star")
    (tmp_path / "c.jsonl").write_text('{"caption": "a star"}\n{"caption": "my ring"}\n')
    (tmp_path / "c.txt").write_text("a star\n\nmy ring\n")
    assert read_captions(tmp_path / "c.jsonl") == read_captions(tmp_path / "c.txt") == ["a star", "my ring"]
    corpus = caption_corpus(2, 11)
    assert len(corpus) == 64 and corpus == caption_corpus(2, 11)


def test_world_defaults():
    groups = preset_groups("world")
    assert len(groups) == 8 and sorted(c for g in groups.values() for c in g) == sorted(preset_classes("world"))
    assert len(world_held_out()) == 8


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_eval_ood_and_openness_end_to_end(world, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "ood", "--dataset", str(world), "--out", str(out), "--no-progress", "--repe"]) == 0
    report = json.loads((out / "ood.json").read_text())
    rows = report["results"]["ood"]["CLIP"]
    assert set(rows) == {"sketch", "photograph", "mean"}
    assert set(rows["mean"]) == {"MCM", "MaxLogit", "Energy", "MaxLogitEnsemble", "VL4AD"}
    assert 0.5 < rows["mean"]["MaxLogit"]["AUROC"] <= 1.0
    assert "ood_repe" in report["results"] and (out / "ood_scores.png").stat().st_size > 10_000
    assert sorted(report["results"]["ood_split"]["ood"]) == sorted(world_held_out())
    merge = tmp_path / "merge.json"
    merge.write_text(json.dumps({"roundish": ["circle", "ellipse"]}))
    assert main(["eval", "ood", "--dataset", str(world), "--out", str(tmp_path / "m"), "--no-progress",
                 "--merge", str(merge), "--ood-prompts", "spiky shape", "ring-like shape"]) == 0
    merged = json.loads((tmp_path / "m" / "ood.json").read_text())["results"]
    assert "OODPrompts" in merged["ood"]["CLIP"]["mean"]
    plain = json.loads((out / "ood.json").read_text())["results"]["ood"]["CLIP"]["mean"]
    assert merged["ood"]["CLIP"]["mean"]["MaxLogitEnsemble"] == plain["MaxLogitEnsemble"]  # a max is a max
    assert merged["ood"]["CLIP"]["mean"]["VL4AD"] != plain["VL4AD"]  # merged classes stop competing
    assert merged["ood_split"]["ood_prompts"] == ["spiky shape", "ring-like shape"]
    assert main(["eval", "openness", "--dataset", str(world), "--out", str(out), "--no-progress", "--orders", "2"]) == 0
    result = json.loads((out / "openness.json").read_text())["results"]["openness"]["CLIP"]["mean"]
    assert 0 < result["full"] <= result["Acc-E"] <= result["Acc-C"] <= 1
    assert (out / "openness_curves.png").is_file()


def test_an_open_set_adapter_is_accepted_for_ood_alone(world, tmp_path, embedded, capsys):
    """An adapter trained without the held-out classes may score the OOD test that holds them out (and is not marked
    named-class); a task that classifies those classes with it is refused."""
    from clap.adapter.config import AdapterConfig
    from clap.adapter.disentangler import Disentangler
    from clap.prompts.classes import world_open_set

    adapter = Disentangler(AdapterConfig(in_dim=embedded.embed_dim, classes=world_open_set(),
                                         backbone=embedded.identity.to_dict()))
    adapter.save_pretrained(tmp_path / "open")
    argv = ["--dataset", str(world), "--adapter", f"CLAP={tmp_path / 'open'}@1", "--no-progress", "--n-boot", "100"]
    assert main(["eval", "ood", *argv, "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "ood.json").read_text())["results"]["ood_split"]["named_in_training"] == {}
    capsys.readouterr()
    assert main(["eval", "zeroshot", *argv, "--out", str(tmp_path / "z")]) == 2
    assert "do not include" in capsys.readouterr().err


def test_eval_ood_with_an_ood_folder(world, tmp_path, capsys):
    ood = tmp_path / "ood"
    render_world(ood, "domains", 1, seed=9, spec=WorldSpec(image_types=("sketch",), classes=("star", "ring")),
                 progress=False)
    code, err = run_cli(["eval", "ood", "--dataset", str(world), "--ood", str(ood), "--out", str(tmp_path / "r")],
                        capsys)
    assert code == 2 and "named like ID classes" in err and err.count("\n") == 1
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, p in enumerate(sorted(ood.rglob("*.png"))):
        p.rename(flat / f"{i}.png")
    assert main(["eval", "ood", "--dataset", str(world), "--ood", str(flat), "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--ood", "EMPTY"], "holds no images"),
    (["--ood", "WORLD"], "overlaps the dataset"),
    (["--ood-classes", "dragon"], "must be classes"),
    (["--merge", "BADGROUPS"], "not classes of the dataset"),
])
def test_eval_ood_bad_input(world, tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text(json.dumps({"g": ["circle", "dragon"]}))
    names = {"EMPTY": str(tmp_path / "empty"), "WORLD": str(world / "sketch"), "BADGROUPS": str(tmp_path / "bad.json")}
    code, err = run_cli(["eval", "ood", "--dataset", str(world), "--out", str(tmp_path / "r"), "--no-progress",
                         *[names.get(a, a) for a in extra]], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "ood.json").exists()


def test_eval_openness_refuses_groups_missing_classes(world, tmp_path, capsys):
    (tmp_path / "g.json").write_text(json.dumps({"a": ["circle"], "b": ["star"]}))
    code, err = run_cli(["eval", "openness", "--dataset", str(world), "--groups", str(tmp_path / "g.json"),
                         "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 2 and "the groups miss" in err


def test_ood_intervals_recompute_per_domain_metrics_and_count_a_shared_set_once():
    """The interval is for the mean over domains of per-domain AUROCs; one OOD set shared by two domains is
    drawn once per resample (its weights are the same in both domains)."""
    from clap.evaluation.protocols.ood import ood_statistic
    from clap.evaluation.statistics.resample import OBSERVED, Resamples
    from clap.evaluation.statistics.stats import TaskMeasure, differences

    rng = np.random.default_rng(1)
    oods = np.round(rng.normal(0, 1, 200), 1)
    base = {d: {"s": {"id": np.round(rng.normal(mu, 1, 150), 1), "ood": oods}} for d, mu in (("a", 0.5), ("b", 1.5))}
    better = {d: {"s": {"id": p["s"]["id"] + 1.0, "ood": oods}} for d, p in base.items()}
    per_domain = {d: ood_scores.detection_metrics(p["s"]["id"], oods)["AUROC"] for d, p in base.items()}
    assert ood_statistic(base, shared=True)(OBSERVED)["s AUROC"][0] == pytest.approx(np.mean(list(per_domain.values())))
    resamples = Resamples(300)
    chunk = next(resamples.chunks())
    ood_statistic(base, shared=True)(chunk)
    assert "ood-ood:shared" in chunk._weights and "ood-ood:a" not in chunk._weights
    measure = TaskMeasure({"CLIP": ood_statistic(base, True), "A#1": ood_statistic(better, True),
                           "A#2": ood_statistic(better, True), "B": ood_statistic(base, True)}, 500)
    out = differences("CLIP", {"ood": measure}, resamples)["differences"]["ood"]
    d = out["A"]["s AUROC"]
    assert d["low"] <= d["difference"] <= d["high"] and d["low"] > 0 and d["direction"] == "higher"
    assert d["difference"] == pytest.approx(ood_statistic(better, True)(OBSERVED)["s AUROC"][0]
                                            - ood_statistic(base, True)(OBSERVED)["s AUROC"][0])
    assert out["B"]["s AUROC"]["difference"] == 0.0 and out["B"]["s AUROC"]["contains_zero"]




def test_weighted_metrics_are_the_metrics_of_the_repeated_images():
    """A row of image weights (a bootstrap resample) gives the metrics of the images repeated that often,
    ties included, so the intervals recompute exactly the table's metrics."""
    rng = np.random.default_rng(3)
    ids, oods = np.round(rng.normal(1, 1, 40), 1), np.round(rng.normal(0, 1, 30), 1)
    w_id, w_ood = rng.integers(0, 3, (5, 40)).astype(float), rng.integers(1, 3, (5, 30)).astype(float)
    got = ood_scores.weighted_metrics(ids, oods, w_id, w_ood)
    for r in range(5):
        id_rep, ood_rep = np.repeat(ids, w_id[r].astype(int)), np.repeat(oods, w_ood[r].astype(int))
        repeated = ood_scores.detection_metrics(id_rep, ood_rep)
        labels, scores = np.r_[np.ones(len(id_rep)), np.zeros(len(ood_rep))], np.r_[id_rep, ood_rep]
        assert repeated["AUROC"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert repeated["AUPR_in"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
        assert {k: v[r] for k, v in got.items()} == pytest.approx(repeated, abs=1e-12)


def test_a_resample_on_merged_bins_is_within_0001_of_the_unmerged_metrics():
    """A resample's metrics on at most RESAMPLE_BINS merged bins stay within 0.001 of the metrics on every distinct
    score, on 30k overlapping scores; with fewer distinct scores than that they are the same."""
    rng = np.random.default_rng(7)
    for n_id, n_ood in ((20000, 10000), (300, 200)):
        ids, oods = rng.normal(1, 1, n_id), rng.normal(0, 1.2, n_ood)
        ranked = ood_scores.RankedScores(ids, oods)
        w_id, w_ood = (rng.multinomial(n, np.full(n, 1 / n), 4) for n in (n_id, n_ood))
        exact, merged = ranked.metrics(w_id, w_ood), ranked.metrics(w_id, w_ood, merged=True)
        assert ranked._merged[0].shape[0] <= ood_scores.RESAMPLE_BINS
        for metric in ood_scores.METRICS:
            assert merged[metric] == pytest.approx(exact[metric], abs=1e-3 if n_id > 1000 else 1e-12), metric
        assert (ranked._merged[0].shape[0] < n_id) == (n_id > 1000)


def test_openness_analysis_measures_equal_a_hand_computation():
    import math

    from clap.evaluation.protocols import openness_analysis as oa
    from clap.evaluation.statistics.resample import OBSERVED

    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # class text features, normalised
    f = torch.tensor([[0.8, 0.6], [0.0, 1.0]])  # two images, of classes 0 and 1
    labels = torch.tensor([0, 1])
    assert oa.alignment_terms(f, t, labels).tolist() == pytest.approx([(0.8 - 1) ** 2 + 0.6 ** 2, 0.0])
    pairs = [2.0, (1 - 0.6) ** 2 + 0.8 ** 2, 0.6 ** 2 + (1 - 0.8) ** 2]  # squared distances of the 3 pairs
    assert oa.uniformity(t) == pytest.approx(math.log(sum(math.exp(-2 * d) for d in pairs) / 3))
    scores = f @ t.T  # image 0: 0.8, 0.6, 0.96; image 1: 0, 1, 0.8
    assert oa.margins(scores, labels).tolist() == pytest.approx([0.8 - 0.96, 1 - 0.8])
    values = np.array([3.0, 1.0, 2.0, 10.0])
    assert oa.weighted_median(OBSERVED.weights("k", 4), values)[0] == 2.0
    assert oa.weighted_median(np.array([[0.0, 1.0, 0.0, 3.0]]), values)[0] == 10.0


def test_adversarial_vocabulary_beats_random_non_target_classes():
    """On random features, the 3 classes chosen to hurt a target vocabulary most (greedy, and the authors'
    ranking) lower its images' accuracy more than 3 non-target classes drawn at random."""
    from clap.evaluation.protocols import openness_analysis as oa

    gen = torch.Generator().manual_seed(0)
    classes = torch.nn.functional.normalize(torch.randn(20, 16, generator=gen), dim=-1)
    labels = torch.randint(0, 4, (200,), generator=gen)
    images = torch.nn.functional.normalize(classes[labels] + 0.9 * torch.randn(200, 16, generator=gen), dim=-1)
    scores, target, others = images @ classes.T, [0, 1, 2, 3], list(range(4, 20))

    def accuracy(extra):
        return float(oa.vocabulary_hits(scores, labels, [*target, *extra]).mean())

    rng = np.random.default_rng(0)
    random_draws = np.mean([accuracy(rng.choice(others, 3, replace=False).tolist()) for _ in range(200)])
    for rule in ("greedy", "ranked"):
        chosen = oa.adversarial_classes(scores, labels, target, others, rule=rule)
        assert len(set(chosen)) == 3 and set(chosen) <= set(others)
        assert accuracy(chosen) < accuracy([]) and accuracy(chosen) < random_draws - 0.05, rule
