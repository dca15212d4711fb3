"""A randomly initialised Stable Diffusion pipeline of the standard layout, built offline from configs: what
the tests and the GPU benchmark run `clap generate` on where no pretrained pipeline can be downloaded. Its
images are noise; its code path (tokenizer, text encoder, UNet, VAE, scheduler) is the real one."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tokenizer_files(folder: Path) -> tuple[Path, Path, int]:
    """A letter-level CLIP BPE vocabulary (vocab.json, merges.txt) in `folder`, and its size."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder / "vocab.json", folder / "merges.txt", len(vocab)


def save_tiny_pipeline(folder: str | Path, width: int = 8, seed: int = 0) -> Path:
    """Save a random pipeline whose UNet and VAE have `width` and 2 * `width` channels into folder/pipeline."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges, size = tokenizer_files(folder)
    channels, text_width = (width, 2 * width), 2 * width
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=channels, layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=text_width,
                                attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=channels, in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=size, hidden_size=text_width, intermediate_size=2 * text_width,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="<|endoftext|>", model_max_length=77)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=DPMSolverMultistepScheduler(steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    target = folder / "pipeline"
    pipe.save_pretrained(target)
    return target
