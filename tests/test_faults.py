"""Faults a real user hits, driven through the CLI as subprocesses (so Lightning's and torch's real stderr
is seen): each ends with exit 2 and one `clap: error:` line on stderr, no traceback, and an adapter or
report already written is byte for byte what it was."""

from __future__ import annotations

import contextlib
import json
import random
import re
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
    assert len(lines) == 1 and re.match(r"clap( [\w-]+)*: error: ", lines[0]), result.stderr[-3000:]
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
                            "--no-progress"), "No space left on device", str(full / "w"))
        one_line_error(clap("eval", "zeroshot", "--dataset", world, "--out", full / "r", "--no-progress"),
                       "No space left on device", str(full / "r"))


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


# The new surfaces' faults: a decoder where an adapter goes, templates, options a task ignores, label maps ...

@pytest.fixture(scope="module")
def decoder(tmp_path_factory, embedded) -> Path:
    from clap.adapter.mask_decoder import MaskDecoder, decoder_config

    folder = tmp_path_factory.mktemp("decoder") / "d"
    config = decoder_config(embedded.embed_dim, ["background", "star"], queries=2, width=16, layers=1, heads=2)
    config.backbone = embedded.identity.to_dict()
    MaskDecoder(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    from clap.data_gen.world.scenes import render_scenes

    root = tmp_path_factory.mktemp("scenes") / "s"
    render_scenes(root, 3, seed=2, spec=WorldSpec(image_types=("sketch",)), progress=False)
    return root


def test_a_mask_decoder_where_an_adapter_goes(world, scenes, decoder, tmp_path, embedded):
    from clap.errors import ClapError
    from clap.model import CLAPModel

    for task, data in (("zeroshot", world), ("anomaly", scenes)):
        one_line_error(clap("eval", task, "--dataset", data, "--adapter", f"X={decoder}", "--out", tmp_path / task,
                            "--no-progress"), "segmentation-route MaskDecoder", "where a Disentangler is needed")
    one_line_error(clap("select-alpha", decoder, "--val", world), "MaskDecoder")
    with pytest.raises(ClapError, match="where a Disentangler is needed"):
        Disentangler.from_pretrained(decoder)
    from clap.adapter.mask_decoder import MaskDecoder

    with pytest.raises(ClapError, match="needs a Disentangler adapter, not a MaskDecoder"):
        CLAPModel(embedded, MaskDecoder.from_pretrained(decoder))


@pytest.mark.parametrize("template, words", [
    ("a {} beside a {}", ["has 2 '{}' slots", "write '{c}'"]), ("a {c} next to a {}", ["mixes '{}' and '{c}'"]),
    ("a {x} photo of a {}", ["has the slot {x}"]), ("a {0} {c}", ["has the slot {0}"]),
    ("a photo of a {} }", ["does not parse"]), ("a {c}}", ["does not parse"]),
    ("a {x} photo", ["has the slot {x}"]), ("missing/templates.txt", ["does not exist"]),
])
def test_a_template_with_other_slots_is_refused_before_any_work(world, tmp_path, template, words):
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--templates", template, "--out", tmp_path / "r",
                        "--no-progress"), "--templates", *words)
    assert not (tmp_path / "r").exists()


def test_the_library_checks_what_the_cli_checks(world, tmp_path):
    import clap as library
    from clap.errors import ClapError
    from clap.evaluation.protocols.anomaly import AnomalyOptions
    from clap.training.segmentation import SceneDataModule

    cases = [(lambda: library.evaluate(world, tasks=5), "tasks must be a task name"),
             (lambda: AnomalyOptions(dense_scale=0), "dense_scale = 0"),
             (lambda: AnomalyOptions(dense_scale=1e6), "<= 4"),
             (lambda: AnomalyOptions(pc_templates=("a {} {}",)), "has 2 '{}' slots"),
             (lambda: SceneDataModule(root=str(tmp_path), template="a {} and a {}"), "has 2 '{}' slots"),
             (lambda: library.load_backbone(device="cuda:7"), "device = 'cuda:7'")]
    for call, words in cases:
        with pytest.raises(ClapError, match=words.replace("{", r"\{").replace("}", r"\}")):
            call()
    report = library.evaluate(world, options={"n_boot": 100})
    assert report.statistics  # a mapping of options is taken as the options
    with pytest.raises(ClapError, match="is a file"):
        report.save(world / "world.json")
    with pytest.raises(ClapError, match="inside"):
        report.save(world / "reports")


def test_options_the_task_would_ignore_and_counts_out_of_reach(world, scenes, tmp_path):
    one_line_error(clap("eval", "zeroshot", "--dataset", world, "--autoattack", "--out", tmp_path / "a"),
                   "--autoattack does nothing for zeroshot")
    one_line_error(clap("eval", "anomaly", "--dataset", scenes, "--cache", tmp_path / "c", "--out", tmp_path / "b"),
                   "--cache does nothing for anomaly")
    for scale in ("0.01", "1000000"):
        one_line_error(clap("eval", "anomaly", "--dataset", scenes, "--dense-scale", scale, "--out", tmp_path / "d"),
                       "--dense-scale")
    one_line_error(clap("world", "render", "--layout", "scenes", "--scenes", "2000000000", "--out", tmp_path / "w"),
                   "--scenes")
    one_line_error(clap("prompts", "--names", "star\nring", "--out", tmp_path / "p"), "one line")
    if not torch.cuda.is_available():
        one_line_error(clap("eval", "zeroshot", "--dataset", world, "--device", "cuda", "--precision", "fp16",
                            "--out", tmp_path / "e"), "no CUDA device")
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c", "d", "e", "w", "p"))


def test_label_values_outside_the_label_set_are_refused(scenes, tmp_path):
    import numpy as np
    from PIL import Image

    copy = tmp_path / "s"
    shutil.copytree(scenes, copy)
    label = sorted((copy / "labels").glob("*.png"))[0]
    values = np.array(Image.open(label))
    values[0, :3] = (200, 201, 202)  # e.g. Cityscapes labelIds given where trainIds are meant
    Image.fromarray(values).save(label)
    line = one_line_error(clap("eval", "anomaly", "--dataset", copy, "--out", tmp_path / "r", "--no-progress"),
                          "[200, 201, 202]", "neither a class id")
    assert "254" not in line.split("holds the values")[1].split("]")[0]


def test_an_identical_second_render_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "w"
    (tmp_path / ".w.clap.lock").write_text(str(os.getpid()))  # the first render: a live process holds the folder
    one_line_error(clap("world", "render", "--layout", "domains", "--images-per-class", "1", "--out", out,
                        "--no-progress"), "another clap command", "a world render")


def test_misleading_messages_now_say_what_is_wrong(world, tmp_path, adapter):
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    one_line_error(clap("train", "--config", tmp_path / "empty.yaml", "--out", tmp_path / "a"), "holds no settings")
    one_line_error(clap("convert-reference", tmp_path, tmp_path / "c"), "is a folder")
    (tmp_path / "file").write_text("x")
    one_line_error(clap("splits", "--dataset", world, "--out", tmp_path / "file"), "is a file")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    one_line_error(clap("world", "render", "--layout", "domains", "--out", tmp_path / "link", "--no-progress"),
                   "is a link to", "does not exist")
    one_line_error(clap("eval", "anomaly", "--dataset", world, "--out", tmp_path / "r"),
                   "domains layout, not of scenes")
    one_line_error(clap("eval", "anomaly", "--dataset", tmp_path / "none", "--out", tmp_path / "r"), "does not exist")
    one_line_error(clap("eval", "openness", "--dataset", world, "--group-size", "10", "--out", tmp_path / "o",
                        "--no-progress"),
                   "group_size 10")


def test_a_clipn_checkpoint_resumed_with_another_variant(tmp_path):
    from clap.training.cli import _changed_settings

    assert _changed_settings({"no_encoder": "copy", "lr": 1e-3, "_class_path": "x", "in_dim": 128},
                             {"no_encoder": "frozen", "lr": 1e-3, "_class_path": "y", "in_dim": None}) == [
        "--model.no_encoder 'copy' -> 'frozen'"]


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path):
    """SIGINT at its default disposition to `python -m clap` once it is importing torch (seen in /proc/PID/maps):
    exit 130 and one line, whether the signal lands in the imports or just after (a long render is running)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "clap", "world", "render", "--layout", "domains",
                             "--images-per-class", "100000", "--no-progress", "--out", str(tmp_path / "w")],
                            env=ENV, stderr=subprocess.PIPE, text=True)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 60
    if not maps.exists():
        proc.kill()
        pytest.skip("needs /proc to see when the command is importing torch")
    while time.monotonic() < deadline and "libtorch" not in maps.read_text():
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("clap: interrupted; "), err[-2000:]


def test_quieter_and_clearer_library_messages(world, tmp_path, caplog):
    """Splits warn once per domain and shot count (not once per seed); a report file onto a folder names the
    folder; an open_clip hub config given as a model config says to give its folder."""
    import logging

    import clap as library
    from clap.data.domains import scan_domain_dataset
    from clap.data.fewshot import write_fewshot_splits
    from clap.errors import ClapError
    from clap.fileio import write_text_atomic

    with caplog.at_level(logging.WARNING, logger="clap.data.fewshot"):
        write_fewshot_splits(scan_domain_dataset(world), tmp_path / "splits", shots=[3], seeds=[0, 1, 2])
    assert len([r for r in caplog.records if "for 3 shots" in r.getMessage()]) == 2  # the world's 2 image types
    (tmp_path / "merged.csv").mkdir()
    with pytest.raises(IsADirectoryError) as error:
        write_text_atomic(tmp_path / "merged.csv", "x")
    assert error.value.filename == str(tmp_path / "merged.csv")
    (tmp_path / "hub.json").write_text(json.dumps({"model_cfg": {"embed_dim": 8}, "preprocess_cfg": {}}))
    with pytest.raises(ClapError, match="open_clip hub config"):
        library.load_backbone(str(tmp_path / "hub.json"), pretrained="random")


def test_a_decoder_of_another_build_of_the_backbone_is_named_once(decoder, embedded):
    from clap.adapter.mask_decoder import MaskDecoder
    from clap.errors import ClapError
    from clap.model import check_compatible

    other = MaskDecoder.from_pretrained(decoder)
    other.config.backbone = {**embedded.identity.to_dict(), "quick_gelu": not embedded.identity.quick_gelu}
    with pytest.raises(ClapError) as error:
        check_compatible(embedded, other)
    message = str(error.value)
    assert message.startswith("mask decoder was trained on another build of ") and "mask decoder vs backbone" in message
    assert message.count(embedded.identity.describe()) == 1
