"""Ctrl-C (a real SIGINT) during train, generate, world render and eval: one line, exit 130, a state the
same command resumes from, and nothing that looks complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import run_until
from test_generate import CLASSES, _cli as generate_cmd
from test_training import write_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def interrupt(proc: subprocess.Popen, marker: Path) -> str:
    """Send SIGINT; assert exit 130 and a one-line message without traceback; return stderr."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err = Path(f"{marker}.stderr").read_text()
    clap_lines = [line for line in err.splitlines() if line.startswith("clap:")]
    assert "Traceback" not in err and len(clap_lines) == 1, err[-2000:]
    assert clap_lines[0].startswith("clap: interrupted; ") and err.strip().endswith(clap_lines[0])
    return clap_lines[0]


def clap(*argv: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "clap.cli.main", *argv], env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def pixels(root: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(root).as_posix(): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}


def test_train_interrupted_mid_window_resumes_to_the_uninterrupted_adapter(tmp_path):
    for run in ("full", "cut"):
        (tmp_path / run).mkdir()
    clap("train", "--config", str(write_config(tmp_path / "full", steps=80)), "--out", str(tmp_path / "full" / "a"))
    config = write_config(tmp_path / "cut", steps=80)
    out, marker = tmp_path / "cut" / "a", tmp_path / "marker"
    proc = run_until(marker, "step", 30, ["train", "--config", str(config), "--out", str(out)], env=ENV)
    line = interrupt(proc, marker)
    checkpoint = tmp_path / "cut" / "ckpt" / "interrupted.ckpt"
    assert f"--ckpt_path {checkpoint}" in line
    assert not (out / "adapter_model.safetensors").exists()
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 30
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 30
    clap("train", "--config", str(config), "--out", str(out), "--ckpt_path", str(checkpoint))
    assert json.loads((out / "training_summary.json").read_text())["status"] == "completed"
    a = load_file(str(tmp_path / "full" / "a" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_interrupted_during_setup_prints_a_command_that_works(tmp_path):
    """Ctrl-C before the first step: no checkpoint without weights, and the printed advice is to rerun."""
    config, out, marker = write_config(tmp_path, steps=20), tmp_path / "a", tmp_path / "marker"
    proc = run_until(marker, "setup", 0, ["train", "--config", str(config), "--out", str(out)], env=ENV)
    line = interrupt(proc, marker)
    assert "nothing to resume; rerun the same command" in line and "--ckpt_path" not in line
    assert not (tmp_path / "ckpt" / "interrupted.ckpt").exists() and not (out / "adapter_model.safetensors").exists()
    clap("train", "--config", str(config), "--out", str(out))
    assert json.loads((out / "training_summary.json").read_text())["status"] == "completed"


def test_generate_interrupted_resumes(tiny_sd_dir, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    proc = run_until(marker, "image", 3, generate_cmd(tiny_sd_dir, out)[3:], env=ENV)
    assert "rerun the same command to resume" in interrupt(proc, marker)
    assert len(pixels(out)) == 3 and not (out / "manifest.jsonl").exists()
    clap(*generate_cmd(tiny_sd_dir, out)[3:])
    assert len(pixels(out)) == 12 and len((out / "manifest.jsonl").read_text().splitlines()) == 12
    assert sorted(CLASSES) == sorted(p.name for p in out.iterdir() if p.is_dir())


def test_world_render_interrupted_resumes_to_the_same_pixels(tmp_path):
    args = ["--layout", "domains", "--images-per-class", "1", "--image-types", "sketch", "photograph",
            "--seed", "3", "--no-progress"]
    clap("world", "render", "--out", str(tmp_path / "full"), *args)
    out, marker = tmp_path / "cut", tmp_path / "marker"
    proc = run_until(marker, "render", 5, ["world", "render", "--out", str(out), *args], env=ENV)
    interrupt(proc, marker)
    assert len(pixels(out)) == 5 and not list(out.glob("*.jsonl"))
    clap("world", "render", "--out", str(out), *args)
    full, resumed = pixels(tmp_path / "full"), pixels(out)
    assert full.keys() == resumed.keys() and all(np.array_equal(full[k], resumed[k]) for k in full)


def test_eval_interrupted_writes_no_report_and_reruns(tmp_path):
    data = tmp_path / "data"
    clap("world", "render", "--out", str(data), "--layout", "domains", "--images-per-class", "2",
         "--image-types", "sketch", "photograph", "--no-progress")
    argv = ["eval", "all", "--dataset", str(data), "--out", str(tmp_path / "report"), "--no-progress"]
    marker = tmp_path / "marker"
    proc = run_until(marker, "attack", 0, argv, env=ENV)
    assert "no report was written" in interrupt(proc, marker)
    assert not list((tmp_path / "report").glob("all.*"))
    clap(*argv[:-1], "--shots", "1", "--attack-images", "2", "--eps", "8/255", "--no-progress")
    assert (tmp_path / "report" / "all.json").is_file()


def _processes_with(variable: str) -> list[str]:
    """The command lines of live processes whose environment holds `variable` (a run's workers carry it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and variable.encode() in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # ended meanwhile, or not ours
            continue
    return found


def _gone(variable: str, seconds: float = 10.0) -> list[str]:
    """Waits for the processes holding `variable` to end; returns those still there after `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := _processes_with(variable)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_demo_interrupted_while_training_side_by_side_stops_every_worker(tmp_path):
    from tests.shrunk import SMALL

    mark = f"CLAP_TEST_RUN={tmp_path.name}"
    env = {**ENV, "CLAP_TEST_RUN": tmp_path.name}
    options = [*SMALL[:SMALL.index("--imaug-steps")], "--imaug-steps", "100000",
               *SMALL[SMALL.index("--imaug-steps") + 2:]]
    marker, out = tmp_path / "marker", tmp_path / "demo"
    proc = run_until(marker, "run", 1, ["demo", "--out", str(out), *options], env=env)  # CLAP done, Im.Aug running
    assert _processes_with(mark)  # the training workers
    assert interrupt(proc, marker).startswith("clap: interrupted; rerun the same command")
    assert not _gone(mark)
    assert not (out / "adapters" / "imaug_seed2024" / "adapter_model.safetensors").exists()
