"""The real pipeline on CUDA against the same run on the CPU (`pytest -m gpu`; skipped without a CUDA device).

Tolerances, stated once: in fp32 a CUDA run and a CPU run differ by rounding only, so accuracies agree
within 2 images of the evaluated set and trained weights within 1% (relative norm of the difference, after
tens of Adam steps); under autocast (bf16/fp16 encoders) accuracies stay within 3 points. Attacks run in
fp32 everywhere; their accuracies may move by a few images (a gradient sign near 0 flips with rounding).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import clap
from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (pytest -m gpu on a GPU)")]

SPEC = WorldSpec(image_types=("sketch", "photograph"))
QUIET = {"enable_progress_bar": False, "logger": False, "enable_model_summary": False}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpuworld")
    render_world(root, "domains", 4, seed=5, spec=SPEC, progress=False)
    return root


def _train(route: str, out, device: str, data: dict | None = None, steps: int = 30):
    trainer = {"max_steps": steps, "default_root_dir": str(out.parent / f"runs_{out.name}"), **QUIET,
               **({"accelerator": "gpu", "devices": 1} if device == "cuda" else {"accelerator": "cpu"})}
    return clap.train_adapter(route, out, data={"device": device, **(data or {})}, trainer=trainer, seed=3)


def _relative_difference(a: dict, b: dict) -> float:
    num = sum(float((a[k].float() - b[k].float()).norm() ** 2) for k in a)
    return (num / sum(float(b[k].float().norm() ** 2) for k in b)) ** 0.5


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """The text route trained on CUDA and on the CPU from the same seed."""
    folder = tmp_path_factory.mktemp("gpuadapters")
    data = {"classes": "world", "batch_size": 16, "window": 20}
    for device in ("cuda", "cpu"):
        _train("text", folder / device, device, data)
    return {device: folder / device for device in ("cuda", "cpu")}


def test_text_route_on_cuda_trains_the_cpu_adapter(adapters):
    weights = {d: load_file(str(p / "adapter_model.safetensors")) for d, p in adapters.items()}
    assert all(t.device.type == "cpu" for t in weights["cuda"].values())  # saved from CUDA, loads anywhere
    assert _relative_difference(weights["cuda"], weights["cpu"]) < 0.01


@pytest.mark.parametrize("route, data", [
    ("image", {"batch_size": 16, "window": 20}),
    ("negation", {"batch_size": 16, "window": 20}),
])
def test_image_and_negation_routes_on_cuda(tmp_path, route, data):
    root = tmp_path / "data"
    render_world(root, "image-route" if route == "image" else "captions", 2, seed=7, progress=False)
    runs = {d: _train(route, tmp_path / d, d, {"root": str(root), **data}, steps=20)[0] for d in ("cuda", "cpu")}
    assert _relative_difference(runs["cuda"].state_dict(), runs["cpu"].state_dict()) < 0.01


def _accuracies(report) -> dict[str, float]:
    return {f"{m}/{f}": row["mean"][f] for m, row in report.results["zeroshot"].items() for f in ("C", "PC", "CP")}


@pytest.mark.parametrize("precision, tolerance", [("fp32", None), ("bf16", 0.03), ("fp16", 0.03)])
def test_zero_shot_on_cuda_matches_the_cpu(world, adapters, precision, tolerance):
    kwargs = dict(adapters={"CLAP": [str(adapters["cpu"])]}, tasks=("zeroshot", "fewshot"), shots=[1], n_boot=100,
                  progress=False)
    cpu = clap.evaluate(world, **kwargs)
    cuda = clap.evaluate(world, device="cuda", precision=precision, **kwargs)
    images = sum(1 for _ in world.rglob("*.png"))
    allowed = tolerance if tolerance is not None else 2 / images
    for key, value in _accuracies(cpu).items():
        assert abs(_accuracies(cuda)[key] - value) <= allowed + 1e-9, (key, precision)


def test_attacks_on_cuda_run_in_fp32(world, adapters):
    kwargs = dict(adapters={"CLAP": [str(adapters["cpu"])]}, tasks=("adversarial",), attack_images=8, eps=["4/255"],
                  n_boot=100, progress=False)
    cpu, cuda = clap.evaluate(world, **kwargs), clap.evaluate(world, device="cuda", precision="bf16", **kwargs)
    for model, heads in cpu.results["adversarial"].items():
        for head, rows in heads.items():
            assert cuda.results["adversarial"][model][head]["mean"]["clean"] == pytest.approx(rows["mean"]["clean"],
                                                                                             abs=2 / 16)


def test_cli_on_cuda_end_to_end(world, adapters, tmp_path):
    """select-alpha, eval all, ood and openness with --device cuda, through the command line; the feature cache
    written from CUDA holds CPU tensors."""
    val = tmp_path / "val"
    render_world(val, "domains", 2, seed=9, spec=SPEC, progress=False)
    adapter = tmp_path / "adapter"
    import shutil

    shutil.copytree(adapters["cpu"], adapter)
    assert main(["select-alpha", str(adapter), "--val", str(val), "--device", "cuda", "--no-progress"]) == 0
    cache = tmp_path / "cache"
    common = ["--dataset", str(world), "--adapter", f"CLAP={adapter}@auto", "--device", "cuda", "--cache", str(cache),
              "--no-progress", "--n-boot", "100", "--out", str(tmp_path / "report")]
    assert main(["eval", "all", *common, "--shots", "1", "--attack-images", "4", "--eps", "4/255"]) == 0
    assert main(["eval", "ood", *common, "--ood-classes", "star", "ring"]) == 0
    assert main(["eval", "openness", *common, "--orders", "1"]) == 0
    report = json.loads((tmp_path / "report" / "all.json").read_text())
    assert set(report["results"]["zeroshot"]) == {"CLIP", "CLAP"}
    cached = [load_file(str(p)) for p in cache.rglob("*.safetensors")]
    assert cached and all(t.device.type == "cpu" for c in cached for t in c.values())


def test_random_vit_b16_on_cuda(world, tmp_path):
    """A randomly initialised ViT-B/16: text-route training and zero-shot evaluation on CUDA; its image features
    on CUDA (fp32) equal the CPU's up to rounding."""
    backbone = {"model": "ViT-B-16", "pretrained": "random"}
    torch.manual_seed(0)
    cpu = clap.load_backbone(**backbone)
    cuda = clap.load_backbone(**backbone, device="cuda", precision="fp32")
    cuda.load_state_dict(cpu.state_dict())
    pixels = torch.rand(4, 3, 224, 224)
    same = torch.nn.functional.cosine_similarity(cpu.encode_image(pixels), cuda.encode_image(pixels).cpu())
    assert float(same.min()) > 0.9999
    out = tmp_path / "vitb16"
    trainer = {"max_steps": 10, "accelerator": "gpu", "devices": 1, "default_root_dir": str(tmp_path / "runs"), **QUIET}
    adapter, summary = clap.train_adapter("text", out, data={"classes": "world", "batch_size": 8, "window": 10,
                                                             "device": "cuda", **backbone}, trainer=trainer, seed=0)
    assert summary and not adapter.is_identity()
    report = clap.evaluate(world, backbone=backbone, adapters={"CLAP": [str(out)]}, tasks="zeroshot", device="cuda",
                           n_boot=100, progress=False)
    assert set(report.results["zeroshot"]) == {"CLIP", "CLAP"}


def test_generate_on_cuda(tmp_path):
    from clap.data_gen.sd.tiny import save_tiny_pipeline

    pipeline = save_tiny_pipeline(tmp_path / "sd")
    out = tmp_path / "images"
    for precision in ([], ["--fp16"]):
        folder = out / (precision[0][2:] if precision else "fp32")
        assert main(["generate", "--names", "star", "ring", "--out", str(folder), "--model", str(pipeline), "--steps",
                     "2", "--size", "32", "--prompts-per-class", "3", "--batch-size", "2", "--device", "cuda",
                     "--no-progress", *precision]) == 0
        assert len(list(folder.rglob("*.png"))) == 6


def test_segmentation_route_and_eval_anomaly_on_cuda(tmp_path):
    """The mask decoder trains on CUDA (features on the GPU, the set loss's matching on the CPU) to weights within
    1% of the CPU run's, and `clap eval anomaly --device cuda` scores with it as on the CPU (AUROC within 0.01)."""
    from clap.data_gen.world.scenes import render_scenes

    render_scenes(tmp_path / "train", 8, seed=1, ood=False, spec=SPEC, progress=False)
    render_scenes(tmp_path / "test", 12, seed=2, spec=SPEC, progress=False)
    for device in ("cuda", "cpu"):
        _train("segmentation", tmp_path / f"decoder_{device}", device, {"root": str(tmp_path / "train")}, steps=20)
    weights = {d: load_file(str(tmp_path / f"decoder_{d}" / "adapter_model.safetensors")) for d in ("cuda", "cpu")}
    assert _relative_difference(weights["cuda"], weights["cpu"]) < 0.01
    aurocs = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / f"report_{device}"
        assert main(["eval", "anomaly", "--dataset", str(tmp_path / "test"), "--decoder",
                     str(tmp_path / "decoder_cpu"), "--device", device, "--precision", "fp32", "--out", str(out),
                     "--no-progress", "--n-boot", "100"]) == 0
        aurocs[device] = json.loads((out / "anomaly.json").read_text())["results"]["anomaly"]["CLIP"]["mean"]
    for score in ("MaxLogit", "Decoder"):
        assert abs(aurocs["cuda"][score]["AUROC"] - aurocs["cpu"][score]["AUROC"]) < 0.01, score
