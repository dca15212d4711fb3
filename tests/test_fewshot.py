"""Few-shot splits: per domain and class, seeded, nested, index files not copies."""

from __future__ import annotations

import json

import pytest

from clap.cli.main import main
from clap.data.domains import scan_domain_dataset
from clap.data.fewshot import fewshot_indices, read_split, write_fewshot_splits
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    spec = WorldSpec(classes=("star", "ring", "heart"), image_types=("sketch", "clipart"))
    render_world(root, "domains", 10, seed=0, spec=spec, progress=False)
    return scan_domain_dataset(root)


def test_k_per_class_per_domain_and_nested(dataset):
    for domain in dataset.domains:
        sets = {k: fewshot_indices(dataset, domain, k, seed=0) for k in (1, 4, 8)}
        for k, idx in sets.items():
            classes = [dataset.samples[i][2] for i in idx]
            assert sorted(classes) == sorted(list(range(3)) * k)
            assert all(dataset.samples[i][1] == dataset.domains.index(domain) for i in idx)
        assert set(sets[1]) <= set(sets[4]) <= set(sets[8])


def test_seeds_differ_and_repeat(dataset):
    a = fewshot_indices(dataset, "sketch", 4, seed=0)
    assert a == fewshot_indices(dataset, "sketch", 4, seed=0)
    assert a != fewshot_indices(dataset, "sketch", 4, seed=1)


def test_small_classes_keep_what_they_have(dataset):
    assert len(fewshot_indices(dataset, "sketch", 32, seed=0)) == 30


def test_index_files(dataset, tmp_path):
    index = json.loads(write_fewshot_splits(dataset, tmp_path, shots=(1, 4), seeds=(0,)).read_text())
    assert len(index["splits"]) == 4
    pairs = read_split(tmp_path / "clipart" / "4shot_seed0.txt", dataset.root)
    assert len(pairs) == 12 and all(p.is_file() for p, _ in pairs)
    assert {name for _, name in pairs} == {"star", "ring", "heart"}
    assert not list(tmp_path.rglob("*.png"))


def test_cli_splits(dataset, tmp_path, capsys):
    assert main(["splits", "--dataset", str(dataset.root), "--out", str(tmp_path), "--shots", "1", "--seeds", "0",
                 "1"]) == 0
    assert (tmp_path / "sketch" / "1shot_seed1.txt").is_file()
    assert main(["splits", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
