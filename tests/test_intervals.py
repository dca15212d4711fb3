"""Every interval is for the number its table prints: on a small render with unequal domain sizes and a
two-seed adapter group, each reported difference's point estimate equals the difference of the table values."""

from __future__ import annotations

import json

import pytest
import torch

from clap.adapter.disentangler import Disentangler
from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec

SPEC = WorldSpec(classes=("star", "ring", "heart", "arrow", "gear", "cross"),
                 image_types=("sketch", "clipart", "photograph"))
HELD_OUT = ["gear", "cross"]


@pytest.fixture(scope="module")
def report(tmp_path_factory, embedded):
    root = tmp_path_factory.mktemp("intervals")
    render_world(root / "data", "domains", 6, seed=5, spec=SPEC, progress=False)
    for path in sorted((root / "data" / "sketch").rglob("*.png"))[::3]:  # sketch: a third fewer images
        path.unlink()
    specs = []
    for k, std in enumerate((0.05, 0.06, 0.08)):
        torch.manual_seed(k)
        adapter = Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict(),
                                      classes=list(SPEC.classes), alpha=0.7)
        torch.nn.init.normal_(adapter.projection.weight, std=std)
        adapter.save_pretrained(root / f"a{k}")
        specs += ["--adapter", f"{'A' if k < 2 else 'B'}={root / f'a{k}'}"]
    out = {}
    common = ["--dataset", str(root / "data"), *specs, "--out", str(root / "r"), "--no-progress", "--n-boot", "200"]
    for task, extra in (("zeroshot", []), ("fewshot", ["--shots", "1", "2"]),
                        ("adversarial", ["--attack-images", "3", "--eps", "4/255"]),
                        ("ood", ["--ood-classes", *HELD_OUT]), ("openness", ["--group-size", "2"])):
        assert main(["eval", task, *common, *extra]) == 0
        out[task] = json.loads((root / "r" / f"{task}.json").read_text())
    return out


def _table_value(doc: dict, task: str, model: str, metric: str) -> float:
    """The mean row's value that the Markdown table prints (a seed group's mean over its seeds)."""
    seeds = doc["statistics"]["seeds"].get(task, {})
    rows = seeds[model]["mean"] if model in seeds else doc["results"][task][model]
    if task == "adversarial":  # {classifier: {domain|mean: {clean, attack: {eps: acc}}}}
        head = rows[metric.partition("/")[0]]["mean"]
        attack, at, eps = metric.partition("/")[2].partition("@")
        return head[attack][eps] if at else head[attack]
    mean = rows["mean"]
    if task == "fewshot":
        return mean[metric.removesuffix("-shot")]["mean"]
    if task == "ood":
        score, _, name = metric.rpartition(" ")
        return mean[score][name]
    return mean[metric]


def test_the_domains_differ_in_size(report):
    images = report["zeroshot"]["dataset"]["images"]
    assert images["sketch"] < images["clipart"] == images["photograph"]


@pytest.mark.parametrize("task", ["zeroshot", "fewshot", "adversarial", "ood", "openness", "openness_analysis"])
def test_every_difference_is_the_difference_of_the_printed_values(report, task):
    doc = report[task.removesuffix("_analysis")]  # the openness analysis is reported by `clap eval openness`
    differences = doc["statistics"]["differences"][task]
    assert set(differences) == {"A", "B"} and differences["A"][next(iter(differences["A"]))]["seeds"] == 2
    checked = 0
    for model, metrics in differences.items():
        for metric, d in metrics.items():
            expected = _table_value(doc, task, model, metric) - _table_value(doc, task, "CLIP", metric)
            assert d["difference"] == pytest.approx(expected, abs=1e-12), (model, metric)
            checked += 1
    for pair, tasks in doc["statistics"]["pairs"].items():
        a, _, b = pair.partition(" - ")
        for metric, d in tasks[task].items():
            expected = _table_value(doc, task, a, metric) - _table_value(doc, task, b, metric)
            assert d["difference"] == pytest.approx(expected, abs=1e-12), (pair, metric)
    assert checked >= 4


def test_zero_shot_reports_the_noise_draws_and_the_held_out_names(report):
    doc = report["zeroshot"]
    assert doc["results"]["zeroshot_noise"]["form"] == "shared" and doc["results"]["zeroshot_noise"]["draws"] == 32
    assert doc["statistics"]["differences"]["zeroshot"]["A"]["NC"]["noise_draws"] == 32
    assert doc["results"]["zeroshot"]["CLIP"]["mean"]["NC_draw_std"] > 0
    split = report["ood"]["results"]["ood_split"]
    assert {m: sorted(c) for m, c in split["named_in_training"].items()} == {m: sorted(HELD_OUT)
                                                                             for m in ("A#1", "A#2", "B")}


def test_an_alpha_chosen_on_the_test_set_is_refused(report, tmp_path, capsys, embedded):
    root = report["zeroshot"]["dataset"]["root"]
    adapter = Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict(), alpha=0.5)
    adapter.config.alpha_selection = {"alpha": 0.5, "validation": root}
    adapter.save_pretrained(tmp_path / "a")
    args = ["eval", "zeroshot", "--dataset", root, "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*args, "--adapter", f"X={tmp_path / 'a'}@auto"]) == 2
    err = capsys.readouterr().err
    assert "chose its alpha on" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--adapter", f"X={tmp_path / 'a'}@0.3"]) == 0  # an explicit alpha reads no test labels
