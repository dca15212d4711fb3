"""Tiny randomly initialised models built from configs, offline, shared by the tests."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str):
    """An experiment script (a path under the repository root) as a module, to call its `run`."""
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def experiment_script():
    return load_script


TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_open_clip_files(tmp_path_factory):
    """(config JSON path, weights path) of a tiny random open_clip ViT with a 77-token context."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_open_clip")
    config = folder / "tiny-test-vit.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-test-vit")
    weights = folder / "tiny-test-vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return config, weights


@pytest.fixture(scope="session")
def tiny_open_clip(tiny_open_clip_files):
    from clap.backbones.loading import load_backbone

    config, weights = tiny_open_clip_files
    return load_backbone(str(config), str(weights))


@pytest.fixture(scope="session")
def tiny_hf_clip_dir(tmp_path_factory):
    """A folder holding a tiny random transformers CLIPModel, its tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny_hf_clip")
    from clap.data_gen.sd.tiny import tokenizer_files

    vocab, merges, size = tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="<|endoftext|>", model_max_length=77)
    config = CLIPConfig(
        text_config={"vocab_size": size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "eos_token_id": 1,
                     "bos_token_id": 0, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=24,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                              tokenizer)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_hf_clip(tiny_hf_clip_dir):
    from clap.backbones.loading import load_backbone

    return load_backbone(str(tiny_hf_clip_dir))


@pytest.fixture(scope="session")
def embedded():
    from clap.backbones.loading import load_backbone

    return load_backbone()


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A tiny randomly initialised Stable Diffusion pipeline saved to a folder (loads with from_pretrained)."""
    from clap.data_gen.sd.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd"))


def free_port() -> int:
    """A TCP port nobody listens on now (for torch.distributed rendezvous in tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_until(marker, kind: str, n: int, argv: list[str], env: dict | None = None):
    """Start the CLI frozen after step/image `n` (tests/run_until.py); returns the process once it got there."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    script, log = Path(__file__).with_name("run_until.py"), Path(f"{marker}.stderr")
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(marker), kind, str(n), *argv], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    while not Path(marker).exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {kind} {n}: {log.read_text()[-2000:]}")
        time.sleep(0.02)
    return proc


def forbid_network(monkeypatch) -> None:
    """Make any attempt to open a network connection fail the test (fail-fast paths must not try)."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
