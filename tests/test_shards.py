"""Sharded evaluation: shards of a dataset's domains, evaluated apart, merge into exactly the report of one run."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import clap
from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from clap.errors import ClapError
from clap.evaluation.inputs.shard import Shard
from clap.evaluation.pipeline.records import load_records, save_records
from clap.evaluation.pipeline.task_output import TaskRecords

DOMAINS = ("sketch", "photograph", "cartoon")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shardworld")
    render_world(root, "domains", 3, seed=5, spec=WorldSpec(image_types=DOMAINS), progress=False)
    return root


@pytest.fixture(scope="module")
def adapters(embedded):
    """Two seeds of an (untrained) adapter: a seed group, so that the merge also draws the seed level."""
    from clap.adapter.config import AdapterConfig
    from clap.adapter.disentangler import Disentangler

    seeds = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        seeds.append(Disentangler(AdapterConfig(in_dim=embedded.embed_dim, alpha=0.5,
                                                backbone=embedded.identity.to_dict())))
    return {"CLAP": seeds}


def _comparable(doc: dict) -> dict:
    """A report as JSON reads it, without what differs between runs: times, and the shards' own record."""
    doc = json.loads(json.dumps(doc))
    drop = ("created", "merged_shards")
    doc = {k: v for k, v in doc.items() if k not in drop}
    doc["results"].pop("task_seconds")
    doc["statistics"]["bootstrap"].pop("seconds")
    return doc


def _merged(world, count: int, tmp_path, **kwargs) -> clap.Report:
    paths = [clap.evaluate(world, shard=f"{i}/{count}", **kwargs).save(tmp_path / f"s{i}")[0]
             for i in range(1, count + 1)]
    return clap.merge_shards(reversed(paths))  # in any order


def test_three_shards_merge_into_exactly_one_runs_report(world, adapters, tmp_path):
    """Zero-shot, few-shot and OOD (held-out classes) on 3 domains in 3 shards: rows, seed summaries and every
    interval of the merge equal one run's, bit for bit."""
    kwargs = dict(adapters=adapters, tasks=["zeroshot", "fewshot", "ood"], shots=[1, 2], n_boot=200, progress=False)
    one = clap.evaluate(world, **kwargs)
    merged = _merged(world, 3, tmp_path, **kwargs)
    assert _comparable(merged.to_dict()) == _comparable(one.to_dict())
    assert merged.markdown() == one.markdown()
    assert [s["domains"] for s in merged.run["merged_shards"]] == [["cartoon"], ["photograph"], ["sketch"]]


def test_shards_of_a_shared_ood_folder_with_repe_merge_exactly(world, adapters, tmp_path):
    """One OOD folder scored against every domain (drawn once per resample) and REPE's effect: 2 shards."""
    rendered, ood = tmp_path / "rendered", tmp_path / "ood"
    render_world(rendered, "domains", 2, seed=9, spec=WorldSpec(image_types=("sketch",), classes=("star", "ring")),
                 progress=False)
    ood.mkdir()
    for i, image in enumerate(sorted(rendered.rglob("*.png"))):  # unlabelled OOD images, no class folders
        image.rename(ood / f"{i}.png")
    kwargs = dict(adapters=adapters, tasks="ood", ood=str(ood), repe=True, n_boot=100, progress=False,
                  captions=["a sketch of a star", "a photo of a ring", "a cartoon of a square"], repe_k=1)
    one = clap.evaluate(world, **kwargs)
    assert _comparable(_merged(world, 2, tmp_path, **kwargs).to_dict()) == _comparable(one.to_dict())


def test_shards_of_other_adapters_or_with_one_missing_do_not_merge(world, adapters, tmp_path):
    kwargs = dict(tasks="zeroshot", n_boot=100, progress=False)
    first = clap.evaluate(world, adapters={"CLAP": adapters["CLAP"][0]}, shard="1/2", **kwargs).save(tmp_path / "a")[0]
    other = clap.evaluate(world, adapters={"CLAP": (adapters["CLAP"][0], 0.3)}, shard="2/2", **kwargs)
    with pytest.raises(ClapError, match="their adapters differ"):
        clap.merge_shards([first, other.save(tmp_path / "b")[0]])
    same = clap.evaluate(world, adapters={"CLAP": adapters["CLAP"][0]}, shard="2/2", **kwargs).save(tmp_path / "c")[0]
    (tmp_path / "a" / "zeroshot.records.safetensors").unlink()
    with pytest.raises(ClapError, match="cannot read the shard records"):
        clap.merge_shards([first, same])


def test_the_cli_merges_shards_into_the_report_of_one_run(world, tmp_path, capsys):
    args = ["--dataset", str(world), "--n-boot", "100", "--no-progress"]
    for i in (1, 2):
        assert main(["eval", "zeroshot", *args, "--shard", f"{i}/2", "--out", str(tmp_path / "sharded")]) == 0
    shards = sorted((tmp_path / "sharded").glob("shard-*-of-2/zeroshot.json"))
    assert [p.parent.name for p in shards] == ["shard-1-of-2", "shard-2-of-2"]
    assert (shards[0].parent / "zeroshot.records.safetensors").is_file()
    assert "Shard 1 of 2" in (shards[0].parent / "zeroshot.md").read_text()
    assert main(["eval", "zeroshot", *args, "--out", str(tmp_path / "one")]) == 0
    assert main(["report", "merge", *map(str, shards), "--out", str(tmp_path / "sharded")]) == 0
    merged, one = (json.loads((tmp_path / f / "zeroshot.json").read_text()) for f in ("sharded", "one"))
    assert _comparable(merged) == _comparable(one)
    assert (tmp_path / "sharded" / "zeroshot.md").read_text() == (tmp_path / "one" / "zeroshot.md").read_text()

    capsys.readouterr()
    assert main(["report", "merge", str(shards[0]), "--out", str(tmp_path / "x")]) == 2
    assert "shard 2/2 is missing" in capsys.readouterr().err
    assert main(["report", "merge", *map(str, shards), str(tmp_path / "one" / "zeroshot.json"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "is not a shard's report" in capsys.readouterr().err
    assert main(["eval", "zeroshot", *args, "--seed", "1", "--shard", "2/2", "--out", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["report", "merge", str(shards[0]), str(tmp_path / "other" / "shard-2-of-2" / "zeroshot.json"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "shards of different evaluations" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["eval", "adversarial", "--shard", "1/2"], "`shard` splits zeroshot, fewshot, ood only"),
    (["eval", "zeroshot", "--shard", "4/4"], "the dataset has 3 domains"),
    (["eval", "zeroshot", "--shard", "3/2"], "expected I/N"),
    (["eval", "zeroshot", "--shard", "torchrun"], "needs torchrun's RANK and WORLD_SIZE")])
def test_a_shard_that_cannot_be_is_one_line(world, tmp_path, capsys, argv, message):
    assert main([*argv, "--dataset", str(world), "--no-progress", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err.replace("--shard", "`shard`") and err.count("\n") == 1


def test_shards_take_every_nth_domain_and_torchruns_rank():
    domains = ["a", "b", "c", "d", "e"]
    assert [Shard.parse(f"{i}/2").domains(domains) for i in (1, 2)] == [["a", "c", "e"], ["b", "d"]]
    shard = Shard.parse("torchrun", {"RANK": "2", "WORLD_SIZE": "3", "LOCAL_RANK": "0"})
    assert (shard.index, shard.count, shard.local_rank, shard.name) == (3, 3, 0, "shard-3-of-3")
    assert shard.device("cpu") == "cpu"
    with pytest.raises(ClapError, match="at most 5 shards"):
        Shard(1, 6).domains(domains)


def test_records_keep_their_order_dtypes_and_nans(tmp_path):
    records = {"fewshot": TaskRecords({"fewshot": {"CLIP": {"z": {"1-shot": np.array([[1.0, np.nan]])},
                                                            "a": {"1-shot": np.array([[0.0, 1.0]])}}}}),
               "zeroshot": TaskRecords({"zeroshot": {"CLIP": {"z": {"PC": np.array([True, False]),
                                                                    "NC": np.zeros((3, 2), bool)}}}},
                                       {"prompt_templates": {"PC": ["a photo of a {}"]}})}
    save_records(tmp_path / "r.safetensors", records)
    back = load_records(tmp_path / "r.safetensors")
    assert list(back) == ["fewshot", "zeroshot"] and back["zeroshot"].entries == records["zeroshot"].entries
    assert list(back["fewshot"].records["fewshot"]["CLIP"]) == ["z", "a"]
    assert list(back["zeroshot"].records["zeroshot"]["CLIP"]["z"]) == ["PC", "NC"]
    np.testing.assert_array_equal(back["fewshot"].records["fewshot"]["CLIP"]["z"]["1-shot"], [[1.0, np.nan]])
    assert back["zeroshot"].records["zeroshot"]["CLIP"]["z"]["NC"].dtype == bool
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ClapError, match="cannot read the shard records"):
        load_records(tmp_path / "bad.safetensors")


def test_a_shot_count_some_domain_lacks_is_left_out_of_the_merge(caplog):
    """A shard whose classes are all large keeps a shot count another shard skipped; one run would skip it."""
    from clap.evaluation.protocols.fewshot import few_shot_results

    hits = {"a": {"1-shot": np.ones((2, 4)), "8-shot": np.ones((2, 4))}, "b": {"1-shot": np.zeros((2, 4))}}
    with caplog.at_level(logging.WARNING):
        rows, measure = few_shot_results({"CLIP": hits})
    assert list(rows["CLIP"]["mean"]) == ["1"] and rows["CLIP"]["mean"]["1"]["mean"] == 0.5
    assert measure.images == 8 and "leaving out 8-shot" in caplog.text


def test_a_whole_run_drops_its_records_once_built_and_a_shard_keeps_them(world):
    """The per-image records a task is built from are kept only where a merge needs them (a shard)."""
    from clap.evaluation.inputs.setup import build_setup
    from clap.evaluation.pipeline.tasks import EvalOptions, run_tasks

    setup = build_setup(world, progress=False)
    assert run_tasks(setup, ["zeroshot"], EvalOptions(progress=False)).records == {}
    kept = run_tasks(setup, ["zeroshot"], EvalOptions(progress=False, shard="1/1")).records
    assert list(kept) == ["zeroshot"] and list(kept["zeroshot"].records["zeroshot"]["CLIP"]) == list(setup.raw)
