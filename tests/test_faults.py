"""Faults a real user hits, driven through the CLI as subprocesses (so Lightning's and torch's real stderr
is seen): each ends with exit 2 and one `clap: error:` line on stderr, no traceback, and an adapter or
report already written is byte for byte what it was."""

from __future__ import annotations

import contextlib
import json
import random
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clap.adapter.disentangler import Disentangler
from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from conftest import TINY_OPEN_CLIP

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
SPEC = WorldSpec(classes=("star", "ring", "heart"), image_types=("sketch", "clipart"))


def clap(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clap.cli.main", *map(str, argv)], env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, exactly one stderr line, a `clap: error:` without traceback, holding `words`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("clap: error: "), result.stderr[-3000:]
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "data"
    render_world(root, "domains", 3, seed=3, spec=SPEC, progress=False)
    return root


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, embedded) -> Path:
    folder = tmp_path_factory.mktemp("adapter") / "a"
    Disentangler.create(embedded.embed_dim, backbone=embedded.identity.to_dict()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory, world, adapter) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["eval", "fewshot", "--dataset", str(world), "--adapter", f"X={adapter}", "--shots", "1",
                 "--seeds", "0", "--out", str(out), "--no-progress", "--n-boot", "100"]) == 0
    return out / "fewshot.json"


def edited_adapter(adapter: Path, tmp_path: Path, **fields) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(adapter, folder)
    config = json.loads((folder / "adapter_config.json").read_text()) | fields
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("fields, words", [
    ({"format_version": "abc"}, ["format_version", "int"]), ({"latent_dim": 10**12}, ["latent_dim"]),
    ({"classes": 5}, ["classes"]), ({"backbone": "tiny"}, ["backbone"])])
def test_a_hand_edited_adapter_config(world, adapter, tmp_path, fields, words):
    bad = edited_adapter(adapter, tmp_path, **fields)
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--adapter", f"X={bad}", "--out", tmp_path / "r",
                        "--no-progress"), "adapter_config.json", *words)


def test_nan_weights_are_refused(world, adapter, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = edited_adapter(adapter, tmp_path)
    state = load_file(str(bad / "adapter_model.safetensors"))
    state["projection.weight"][0, 0] = float("nan")
    save_file(state, str(bad / "adapter_model.safetensors"))
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--adapter", f"X={bad}", "--out", tmp_path / "r",
                        "--no-progress"), "NaN")


def test_an_out_that_is_a_file(world, adapter, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--out", afile, "--no-progress"), "is a file")
    one_line_error(clap("train", "--out", afile, "--trainer.max_steps", "2", "--data.classes", "world"), "is a file")
    one_line_error(clap("convert-reference", adapter / "adapter_model.safetensors", afile), "is a file")
    assert afile.read_text() == "keep me"


def test_a_report_folder_inside_the_dataset_is_refused(world):
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--out", world / "report", "--no-progress"),
                   "inside")
    assert not (world / "report").exists() and not list(world.glob(".*lock"))


def test_an_existing_adapter_is_kept_without_overwrite(adapter, tmp_path):
    before = snapshot(adapter)
    one_line_error(clap("train", "--out", adapter, "--trainer.max_steps", "2", "--data.classes", "world"),
                   "already holds an adapter", "--overwrite")
    torch.save({"network_beta.linear.weight": torch.zeros(4, 4)}, tmp_path / "ref.pth")
    one_line_error(clap("convert-reference", tmp_path / "ref.pth", adapter), "already holds an adapter")
    assert snapshot(adapter) == before


def test_a_second_writer_is_refused_while_the_first_runs(world, tmp_path):
    out, lock = tmp_path / "r", tmp_path / ".r.clap.lock"
    lock.write_text(str(os.getpid()))  # this test process: alive
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--out", out, "--no-progress"),
                   "another clap command", str(os.getpid()))
    lock.write_text("999999999")  # no such process: a stale lock is taken over
    assert clap("eval", "zeroshot", "--dataset", world, "--out", out, "--no-progress").returncode == 0
    assert not lock.exists() and (out / "zeroshot.json").is_file()


@pytest.mark.parametrize("content, words", [
    (b"\x00\x01binary\xff\xfe", ["not UTF-8"]),
])
def test_a_binary_training_config(tmp_path, content, words):
    (tmp_path / "c.yaml").write_bytes(content)
    one_line_error(clap("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "a"), *words)


def _checkpoints(tmp_path: Path, adapter: Path) -> dict[str, Path]:
    torch.save({"x": torch.zeros(2)}, tmp_path / "real.pth")
    data = (tmp_path / "real.pth").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.ckpt").write_bytes(random.Random(3).randbytes(4000))
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "clap.training.modules.ImAugModule"}},
               tmp_path / "imaug.ckpt")
    return {"random": tmp_path / "random.ckpt", "truncated": tmp_path / "truncated.ckpt",
            "safetensors": adapter / "adapter_model.safetensors", "other route": tmp_path / "imaug.ckpt"}


@pytest.mark.parametrize("kind, words", [("random", ["not a Lightning", "not a valid pickle"]),
                                         ("truncated", ["not a Lightning"]), ("safetensors", ["--ckpt_path"]),
                                         ("other route", ["ImAugModule"])])
def test_a_checkpoint_that_cannot_resume(adapter, tmp_path, kind, words):
    ckpt = _checkpoints(tmp_path, adapter)[kind]
    one_line_error(clap("train", "--out", tmp_path / "a", "--trainer.max_steps", "2", "--data.classes", "world",
                        "--ckpt_path", ckpt), *words)
    assert not (tmp_path / "a" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("steps", ["0", "-1"])
def test_max_steps_without_a_bound_or_without_steps(tmp_path, steps):
    one_line_error(clap("train", "--out", tmp_path / "a", "--trainer.max_steps", steps, "--data.classes", "world"),
                   "--trainer.max_steps")


def test_the_image_route_on_an_evaluation_dataset(world, tmp_path):
    one_line_error(clap("train", "--model", "ImAugModule", "--data", "ImageDataModule", "--data.root", world,
                        "--out", tmp_path / "a", "--trainer.max_steps", "2"), "root/domain/class/image")


def test_a_pickle_payload_is_refused_for_safety(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": Payload()}))
    line = one_line_error(clap("convert-reference", tmp_path / "evil.pth", tmp_path / "out"), "Python objects",
                          "for safety")
    assert "unpickled!" not in line


def test_an_adapter_file_instead_of_its_folder(world, adapter, tmp_path):
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--adapter", f"X={adapter / 'adapter_config.json'}",
                        "--out", tmp_path / "r", "--no-progress"), "is a file", "folder")


def test_a_class_name_too_long_for_a_folder_leaves_nothing(tmp_path):
    one_line_error(clap("prompts", "--names", "star", "a" * 300, "--out", tmp_path / "p"), "class name", "shorten")
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


@pytest.mark.parametrize("edit, words", [({"models": None}, ["'models'"]),
                                         ({"statistics": {"differences": {"fewshot": 3}}}, ["statistics.differences"])])
def test_a_malformed_report(report, tmp_path, edit, words):
    doc = json.loads(report.read_text()) | edit
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    one_line_error(clap("report", "merge", tmp_path / "bad.json", "--out", tmp_path / "m"), *words)
    one_line_error(clap("report", "claims", tmp_path / "bad.json"), *words)


def test_claims_on_a_report_without_them(report):
    one_line_error(clap("report", "claims", report), "holds none of the claims")


def test_report_merge_into_a_folder(report, tmp_path):
    assert clap("report", "merge", report, "--out", f"{tmp_path / 'tables'}/").returncode == 0
    assert (tmp_path / "tables" / "merged.csv").is_file() and not (tmp_path / "tables.csv").exists()


def test_a_bad_backbone_config_or_weights_file(world, tmp_path, adapter):
    (tmp_path / "bad.json").write_text(json.dumps({"embed_dim": "x"}))
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_OPEN_CLIP))
    (tmp_path / "w.safetensors").write_bytes(os.urandom(3000))
    common = ["eval", "zeroshot", "--dataset", world, "--out", tmp_path / "r", "--no-progress", "--model"]
    one_line_error(clap(*common, tmp_path / "bad.json", "--pretrained", tmp_path / "w.safetensors"),
                   "not an open_clip model config")
    one_line_error(clap(*common, tmp_path / "tiny.json", "--pretrained", tmp_path / "w.safetensors"),
                   "cannot load weights")
    one_line_error(clap(*common, tmp_path / "tiny.json", "--pretrained", adapter / "adapter_model.safetensors"),
                   "do not fit this architecture")


def test_few_shot_counts_a_class_cannot_supply(world, adapter, tmp_path):
    common = ["eval", "fewshot", "--dataset", world, "--adapter", f"X={adapter}", "--no-progress", "--n-boot", "100"]
    one_line_error(clap(*common, "--shots", "3", "4", "--out", tmp_path / "r"), "too few", "--shots 3 4")
    result = clap(*common, "--shots", "1", "8", "--out", tmp_path / "s")
    warnings = [line for line in result.stderr.splitlines() if "skipping shots" in line]
    assert result.returncode == 0 and len(warnings) == 1 and "8" in warnings[0]
    assert "NaN" not in (tmp_path / "s" / "fewshot.json").read_text()


def test_damaged_images_and_a_damaged_cache_are_skipped_with_a_warning(world, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(world, data)
    Image.new("L", (20000, 20000)).save(data / "sketch" / "star" / "bomb.png")  # a decompression bomb
    (data / "clipart" / "empty_class").mkdir()
    (data / "cartoon").mkdir()  # an empty domain
    args = ["eval", "zeroshot", "--dataset", data, "--out", tmp_path / "r", "--no-progress", "--cache", tmp_path / "c"]
    first = clap(*args)
    assert first.returncode == 0 and "bomb.png" in first.stderr and "without images" in first.stderr
    doc = json.loads((tmp_path / "r" / "zeroshot.json").read_text())
    assert doc["dataset"]["domains"] == ["clipart", "sketch"] and "empty class" not in doc["dataset"]["classes"]
    for cached in (tmp_path / "c").iterdir():
        cached.write_bytes(os.urandom(100))
    second = clap(*args, "--overwrite")
    assert second.returncode == 0 and "unreadable" in second.stderr and "Traceback" not in second.stderr


def test_adapter_files_are_readable_by_group_and_others_as_their_siblings(adapter):
    modes = {p.name: p.stat().st_mode & 0o777 for p in adapter.iterdir()}
    assert modes["adapter_model.safetensors"] == modes["adapter_config.json"]


@contextlib.contextmanager
def small_tmpfs(folder: Path, options: str):
    """A tmpfs mounted at `folder` (root only); skips the test where mounting is not allowed."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:100]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_full_disk(world, tmp_path):
    with small_tmpfs(tmp_path / "full", "size=200k") as full:
        one_line_error(clap("world", "render", "--out", full / "w", "--layout", "domains", "--images-per-class", "3",
                            "--no-progress"), "No space left on device")
        one_line_error(clap("eval", "zeroshot", "--dataset", world, "--out", full / "r", "--no-progress"),
                       "No space left on device")


def test_a_read_only_folder(world, tmp_path):
    with small_tmpfs(tmp_path / "ro", "size=1m,ro") as ro:
        one_line_error(clap("eval", "zeroshot", "--dataset", world, "--out", ro / "r", "--no-progress"), "Read-only")
        one_line_error(clap("train", "--out", ro / "a", "--trainer.max_steps", "2", "--data.classes", "world"),
                       "Read-only")


def test_an_existing_report_is_kept_without_overwrite(world, report):
    before = report.read_bytes()
    one_line_error(clap("eval", "fewshot", "--dataset", world, "--out", report.parent, "--no-progress"),
                   "exists from an earlier run", "--overwrite")
    assert report.read_bytes() == before
