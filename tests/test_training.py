"""Training: losses, sampling, determinism, resume after SIGKILL, NaN stop, DDP, both routes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clap.adapter.disentangler import Disentangler
from clap.cli.main import main
from conftest import free_port, run_until
from clap.prompts.augment import AugmentationConfig
from clap.prompts.templates import AttributeVocab
from clap.training.losses import clap_loss, info_nce
from clap.training.steps import LastChunk, StepDataset
from clap.training.text_data import NoiseConfig, PromptBank, PromptChunks


def manual_nt_xent(a, b, tau):
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=-1)
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        sims = [(z[i] @ z[j]) / tau for j in range(2 * n) if j != i]
        total += -(z[i] @ z[partner] / tau) + torch.logsumexp(torch.stack(sims), 0)
    return total / (2 * n)


def test_info_nce_is_nt_xent():
    torch.manual_seed(0)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    assert torch.allclose(info_nce(a, b, 0.5), manual_nt_xent(a, b, 0.5), atol=1e-5)
    aligned = info_nce(a, a + 0.01 * torch.randn(5, 7), 0.1)
    assert aligned < info_nce(a, b, 0.1)
    with pytest.raises(ValueError, match="same shape"):
        info_nce(a, b[:3], 0.5)


def test_clap_loss_terms():
    torch.manual_seed(1)
    t, t_aug, c = torch.randn(3, 4, 6).unbind(0)
    out = clap_loss(t, t_aug, c, tau=0.5, tau_c=1.0, lam=0.25)
    assert torch.allclose(out["loss_prompt"], info_nce(t, t_aug, 0.5))
    assert torch.allclose(out["loss_class"], info_nce(t_aug, c, 1.0))
    assert torch.allclose(out["loss"], out["loss_prompt"] + 0.25 * out["loss_class"])


def test_step_dataset_slices_chunks():
    calls = []

    def produce(chunk):
        calls.append(chunk)
        return {"x": torch.arange(chunk * 12, chunk * 12 + 12)}

    memo = LastChunk(produce)
    ds = StepDataset(memo, batch_size=3, chunk_steps=4, start=5, end=9)
    assert [ds[i]["x"].tolist() for i in range(len(ds))] == [[15, 16, 17], [18, 19, 20], [21, 22, 23], [24, 25, 26]]
    assert calls == [1, 2]
    next_window = StepDataset(memo, batch_size=3, chunk_steps=4, start=9, end=12)
    assert next_window[0]["x"].tolist() == [27, 28, 29]
    assert calls == [1, 2], "a chunk shared by two windows is produced once"


@pytest.fixture(scope="module")
def bank(embedded):
    return PromptBank(embedded, ["star", "ring", "black widow"], AttributeVocab.default())


def test_prompt_bank_matches_direct_encoding(bank, embedded):
    with torch.no_grad():
        assert torch.allclose(bank.class_features, embedded.encode_text(["star", "ring", "black widow"]), atol=1e-5)
        direct = embedded.encode_text([p.text() for p in bank.prompts[2][:5]])
    assert torch.allclose(bank.prompt_features[2, :5], direct, atol=1e-5)


def test_chunks_are_class_balanced_and_follow_the_augmentation_distribution(bank, embedded):
    config = AugmentationConfig()
    chunks = PromptChunks(bank, config, NoiseConfig(0, 0.0), batch_size=6, chunk_steps=500, seed=0)
    classes, prompts, texts, _ = chunks.sample(0)
    assert classes[:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert Counter(classes.tolist()) == {0: 1000, 1: 1000, 2: 1000}
    swapped = sum(t.endswith(" style") for t in texts) / len(texts)
    no_size = sum(not any(s in t for s in ("large", "normal sized", "small")) for t in texts) / len(texts)
    assert abs(swapped - 0.5) < 0.03 and abs(no_size - 0.5) < 0.03
    out = chunks(0)
    with torch.no_grad():
        assert torch.allclose(out["augmented"][:20], embedded.encode_text(texts[:20]), atol=1e-5)
    assert torch.equal(out["class_name"][7], bank.class_features[1])


def test_chunks_are_reproducible_and_noise_is_fresh(bank):
    chunks = PromptChunks(bank, AugmentationConfig(), NoiseConfig(4, 0.02), batch_size=6, chunk_steps=4, seed=3)
    a, b = chunks(2), chunks(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = PromptChunks(bank, AugmentationConfig(), NoiseConfig(0, 0.0), batch_size=6, chunk_steps=4, seed=3)(2)
    assert not torch.allclose(a["augmented"], plain["augmented"], atol=1e-4)
    other_rank = PromptChunks(bank, AugmentationConfig(), NoiseConfig(4, 0.02), 6, 4, seed=3, rank=1)(2)
    assert not torch.equal(a["augmented"], other_rank["augmented"])


def write_config(tmp_path: Path, steps: int = 60, **data) -> Path:
    data = {"classes": "world", "batch_size": 10, "window": 20, "chunk_samples": 100, **data}
    lines = ["trainer:", f"  max_steps: {steps}", "  enable_progress_bar: false", "  enable_model_summary: false",
             "  logger: false", f"  default_root_dir: {tmp_path / 'runs'}", "checkpoint:",
             f"  dirpath: {tmp_path / 'ckpt'}", "  every_n_train_steps: 20", "data:", "  init_args:"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in data.items()]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_writes_a_trained_adapter(tmp_path):
    assert main(["train", "--config", str(write_config(tmp_path)), "--out", str(tmp_path / "adapter")]) == 0
    adapter = Disentangler.from_pretrained(tmp_path / "adapter")
    assert not adapter.is_identity() and adapter.config.route == "text"
    assert adapter.config.backbone["model"] == "tiny-clip-world" and len(adapter.config.classes) == 32
    summary = json.loads((tmp_path / "adapter" / "training_summary.json").read_text())
    assert summary["steps"] == 60 and len(summary["window_losses"]) == 3
    assert summary["window_losses"][-1]["mean_loss"] < summary["window_losses"][0]["mean_loss"]
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"adapter", "window_sum", "window_count"}


def test_same_seed_bit_identical_adapter(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        config = write_config(tmp_path / run, steps=40)
        assert main(["train", "--config", str(config), "--out", str(tmp_path / run / "adapter")]) == 0
    a = load_file(str(tmp_path / "a" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _train_cmd(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clap.cli.main", "train", "--config", str(config), "--out", str(out), *extra]


def test_resolved_config_is_saved_and_reruns_to_the_same_adapter(tmp_path):
    config = write_config(tmp_path, steps=40)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "a"), "--seed_everything", "7"]) == 0
    saved = tmp_path / "a" / "training_config.yaml"
    assert "seed_everything: 7" in saved.read_text()
    assert Disentangler.from_pretrained(tmp_path / "a").config.training["seed"] == 7
    assert main(["train", "--config", str(saved), "--out", str(tmp_path / "b")]) == 0
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_and_resume_gives_the_uninterrupted_adapter(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    (tmp_path / "full").mkdir()
    (tmp_path / "killed").mkdir()
    full = write_config(tmp_path / "full", steps=200, chunk_samples=50)
    assert subprocess.run(_train_cmd(full, tmp_path / "full" / "adapter"), env=env, capture_output=True).returncode == 0
    killed = write_config(tmp_path / "killed", steps=200, chunk_samples=50)
    proc = run_until(tmp_path / "marker", "step", 60, _train_cmd(killed, tmp_path / "killed" / "adapter")[3:],
                     env=env)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = tmp_path / "killed" / "ckpt" / "last.ckpt"
    assert not (tmp_path / "killed" / "adapter").exists()
    assert torch.load(last, weights_only=False)["global_step"] == 60
    resumed = subprocess.run(_train_cmd(killed, tmp_path / "killed" / "adapter", "--ckpt_path", str(last)), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    original = PromptChunks.__call__

    def poisoned(self, chunk):  # features turn NaN from step 20 on (chunks of 10 steps)
        out = original(self, chunk)
        return {k: v * float("nan") for k, v in out.items()} if chunk >= 2 else out

    monkeypatch.setattr(PromptChunks, "__call__", poisoned)
    config = write_config(tmp_path, steps=200)
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "adapter"),
                 "--checkpoint.every_n_train_steps", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "clap: error: loss became nan at step 20" in err and err.count("\n") == 1
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 20
    assert all(torch.isfinite(v).all() for k, v in ckpt["state_dict"].items() if k.startswith("adapter"))
    assert not (tmp_path / "adapter").exists()


def test_early_stopping_on_window_means(tmp_path):
    config = write_config(tmp_path, steps=400)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "adapter"),
                 "--early_stopping.patience", "1", "--early_stopping.min_delta", "100"]) == 0
    summary = json.loads((tmp_path / "adapter" / "training_summary.json").read_text())
    assert summary["stopped_early"] and summary["steps"] == 40


def test_image_route(tmp_path):
    from clap.data_gen.world.export import render_world
    from clap.data_gen.world.render import WorldSpec

    render_world(tmp_path / "images", "image-route", 3, seed=0, spec=WorldSpec(classes=("star", "ring", "heart")),
                 progress=False)
    config = write_config(tmp_path, steps=40)
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "adapter"), "--model", "ImAugModule",
                 "--data", "ImageDataModule", "--data.root", str(tmp_path / "images"), "--data.batch_size", "6",
                 "--data.window", "20", "--data.chunk_samples", "60", "--data.flip_p", "0.5",
                 "--data.block_mask_p", "0.5"])
    assert code == 0
    adapter = Disentangler.from_pretrained(tmp_path / "adapter")
    assert adapter.config.route == "image" and adapter.config.classes == ["heart", "ring", "star"]
    assert not adapter.is_identity()


def test_ddp_two_processes_on_cpu(tmp_path):
    config = write_config(tmp_path, steps=40)
    cmd = _train_cmd(config, tmp_path / "adapter", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                     "--trainer.strategy", "ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    adapter = Disentangler.from_pretrained(tmp_path / "adapter")
    assert adapter.config.training["world_size"] == 2 and not adapter.is_identity()
    assert all(math.isfinite(float(v.abs().max())) for v in adapter.state_dict().values())


def test_runs_side_by_side_give_the_adapters_of_runs_one_at_a_time(tmp_path):
    from clap.errors import ClapError
    from clap.training.parallel import train_runs

    def runs(mode: str) -> list:
        for seed in (1, 2):
            (tmp_path / mode / str(seed)).mkdir(parents=True)
        return [(f"seed{seed}", {"config": write_config(tmp_path / mode / str(seed), steps=40), "seed": seed,
                                 "out": tmp_path / mode / str(seed) / "adapter"}) for seed in (1, 2)]

    assert set(train_runs(runs("side"), jobs=2, progress=False)) == {"seed1", "seed2"}
    train_runs(runs("alone"), jobs=1, progress=False)
    weights = {(mode, seed): load_file(str(tmp_path / mode / seed / "adapter" / "adapter_model.safetensors"))
               for mode in ("side", "alone") for seed in ("1", "2")}
    for seed in ("1", "2"):
        assert all(torch.equal(weights["side", seed][k], weights["alone", seed][k]) for k in weights["side", seed])
    assert not torch.equal(*(weights["side", s]["projection.weight"] for s in ("1", "2")))
    (tmp_path / "bad").mkdir()
    bad = write_config(tmp_path / "bad", classes="imagenet-21k")
    with pytest.raises(ClapError, match="'imagenet-21k' is neither a preset"):
        train_runs([("bad", {"config": bad, "out": tmp_path / "bad" / "adapter"})], jobs=2, progress=False)


def quick_run(run: tuple[str, dict]) -> tuple[str, float]:
    """A run that takes no time: the pool's start and end are what is tested."""
    return run[0], 0.0


def test_side_by_side_runs_end_without_waiting_on_a_worker_eight_times_in_a_row(monkeypatch):
    """The normal end shuts the workers down (no signal to a worker that has done its work), so it never
    hangs; a worker that would not exit is killed and reported instead (JOIN_SECONDS)."""
    import multiprocessing

    from clap.training import parallel

    monkeypatch.setattr(parallel, "_stop", lambda executor: pytest.fail("workers stopped on the normal path"))
    monkeypatch.setattr(parallel, "JOIN_SECONDS", 120.0)  # a worker still there after that (start-up included) fails
    before = set(multiprocessing.active_children())
    for _ in range(8):  # each start spawns 2 workers importing Lightning: seconds apiece on 2 cores
        done = parallel.train_runs([("a", {}), ("b", {}), ("c", {})], jobs=2, progress=False, work=quick_run)
        assert set(done) == {"a", "b", "c"} and not set(multiprocessing.active_children()) - before


def test_side_by_side_runs_from_standard_input_end_with_one_error():
    """Workers spawned from `python - < script` cannot import their parent's script: the call ends with one
    ClapError saying so, instead of replacing dead workers forever."""
    script = ("from clap.training.parallel import train_runs\n"
              "try:\n    train_runs([('a', {}), ('b', {})], jobs=2, progress=False)\n"
              "except Exception as e:\n    print(type(e).__name__, e)\n")
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.startswith("ClapError a training worker process stopped"), done
    assert "if __name__" in done.stdout and done.stderr.count("FileNotFoundError") <= 2


def test_train_takes_no_progress_and_checks_the_seed_up_front(tmp_path, capsys):
    """`--no-progress` (as every clap command takes it) turns Lightning's bar off; a seed numpy cannot take is one
    line before any work."""
    from clap.training.cli import build_cli

    config = str(write_config(tmp_path))
    cli = build_cli(["--config", config, "--trainer.enable_progress_bar", "true", "--no-progress",
                     "--out", str(tmp_path / "a")])
    assert cli.trainer.progress_bar_callback is None
    for seed in ("-1", "4294967296"):
        assert main(["train", "--config", config, "--seed_everything", seed, "--out", str(tmp_path / "b")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"clap: error: --seed_everything {seed}: expected an integer in [0, 4294967295]")
        assert err.count("\n") == 1 and not (tmp_path / "b").exists()


def test_bad_training_input_is_one_line(tmp_path, capsys):
    config = write_config(tmp_path, classes="imagenet-21k")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.startswith("clap: error: 'imagenet-21k' is neither a preset")


def test_prompt_features_are_cached_on_disk(embedded, tmp_path, monkeypatch):
    from clap.training import text_data

    first = PromptBank(embedded, ["star", "ring"], AttributeVocab.default(), cache=text_data.FeatureCache(tmp_path))
    assert len(list(tmp_path.glob("text-*.safetensors"))) == 2

    def fail(*args, **kwargs):
        raise AssertionError("re-encoded although cached")

    monkeypatch.setattr(embedded, "encode_texts", fail)
    again = PromptBank(embedded, ["star", "ring"], AttributeVocab.default(), cache=text_data.FeatureCache(tmp_path))
    assert torch.equal(first.prompt_features, again.prompt_features)
    with pytest.raises(AssertionError, match="re-encoded"):  # other texts are another key
        PromptBank(embedded, ["star", "heart"], AttributeVocab.default(), cache=text_data.FeatureCache(tmp_path))


def test_loss_terms_are_logged_as_means_over_each_interval(tmp_path):
    import csv

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from clap.training.modules import CLAPModule
    from clap.training.text_data import PromptDataModule

    class Record(L.Callback):
        losses: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(float(outputs["loss"]))

    record = Record()
    trainer = L.Trainer(max_steps=12, log_every_n_steps=5, logger=CSVLogger(tmp_path, name="log"),
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        callbacks=[record])
    trainer.fit(CLAPModule(window=100), datamodule=PromptDataModule(batch_size=10, window=100, chunk_samples=100))
    losses = record.losses
    with open(next(tmp_path.glob("log/*/metrics.csv"))) as f:
        logged = [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert logged[:2] == pytest.approx([sum(losses[:5]) / 5, sum(losses[5:10]) / 5], rel=1e-6)
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(sum(losses[10:]) / 2, rel=1e-6)


class ScriptedGenerator:
    """Stands in for the chunk's numpy Generator: fixed prompt picks, uniform draws from a script."""

    def __init__(self, pick: int, draws: list[float]) -> None:
        self.pick, self.draws = pick, list(draws)

    def integers(self, low, high, size):
        return np.full(size, self.pick)

    def random(self):
        return self.draws.pop(0)


def test_training_path_has_the_exact_joint_augmentation_distribution():
    """Exact, not sampled: each of the 2^5 fire patterns is fed to the training sampler (draw p/2 to fire,
    (1+p)/2 not to), and the probability mass of every output text equals the independent-Bernoulli law."""
    import itertools

    from clap.prompts.augment import PromptRegistry
    from clap.prompts.templates import class_prompts
    from clap.training.text_data import draw_samples

    config = AugmentationConfig(osd=0.5, ocd=0.3, itd=0.2, asd=0.1, spo=0.6)
    prompts = [class_prompts("giraffe")]
    registry = PromptRegistry(prompts[0])
    probs = list(config.probabilities().values())
    law: Counter = Counter()
    for pattern in itertools.product((True, False), repeat=5):
        draws = [p / 2 if fire else (1 + p) / 2 for p, fire in zip(probs, pattern)]
        rng = ScriptedGenerator(123, draws)
        _, _, (text,) = draw_samples(prompts, registry, 0, 1, rng, config)
        assert rng.draws == []  # one draw per augmenter, no more, no less
        law[text] += math.prod(p if fire else 1 - p for p, fire in zip(probs, pattern))
    expected = {p.text(): q for p, q in config.variants(prompts[0][123])}
    assert law.keys() == expected.keys()
    assert all(law[t] == pytest.approx(q, abs=1e-12) for t, q in expected.items())


def _fit_objects(tmp_path):
    """`fit` on a module and a data module built in Python, as the config of `write_config(steps=20)` and seed 3
    describe them."""
    import lightning as L

    from clap.training.fit import fit
    from clap.training.modules import CLAPModule
    from clap.training.text_data import PromptDataModule

    L.seed_everything(3, workers=True)
    module = CLAPModule(window=20)
    data = PromptDataModule(classes="world", batch_size=10, window=20, chunk_samples=100)
    trainer = {"max_steps": 20, "enable_progress_bar": False, "enable_model_summary": False, "logger": False,
               "default_root_dir": str(tmp_path / "objects_runs")}
    adapter, summary = fit(module, data, None, trainer, seed=3)
    assert summary["steps"] == 20 and summary["adapter"] is None
    return adapter


def test_train_adapter_from_python_gives_the_cli_adapter_bit_for_bit(tmp_path):
    import clap
    from clap.errors import ClapError
    from clap.training.run import train_arguments

    config = write_config(tmp_path, steps=20)
    assert main(["train", "--config", str(config), "--seed_everything", "3", "--out", str(tmp_path / "cli")]) == 0
    adapter, summary = clap.train_adapter("text", tmp_path / "py", config=config, seed=3, data={"batch_size": 10})
    cli = load_file(str(tmp_path / "cli" / "adapter_model.safetensors"))
    assert all(torch.equal(cli[k], v) for k, v in adapter.state_dict().items())
    assert summary["status"] == "completed" and summary["steps"] == 20 and summary["route"] == "text"
    held, held_summary = clap.train_adapter("text", None, config=config, seed=3, data={"batch_size": 10})
    assert all(torch.equal(cli[k], v) for k, v in held.state_dict().items())  # in memory: the same adapter
    assert held_summary["adapter"] is None and held_summary["steps"] == 20
    objects = _fit_objects(tmp_path)
    assert all(torch.equal(cli[k], v) for k, v in objects.state_dict().items())  # objects: the same core
    assert train_arguments("image", "o", data={"root": "imgs", "classes": ["a", "b"]}, trainer={"max_steps": 5}) == [
        "--seed_everything", "0", "--model", "ImAugModule", "--data", "ImageDataModule", "--trainer.max_steps", "5",
        "--data.root", "imgs", "--data.classes", '["a", "b"]', "--out", "o"]
    with pytest.raises(ClapError, match="unknown route"):
        clap.train_adapter("audio", tmp_path / "x")
