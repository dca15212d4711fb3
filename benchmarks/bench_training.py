"""CLAP training: clap's frozen-feature pipeline vs a reference-style loop, on one backbone and machine.

The reference loop does what the authors' code does at every step: augment the prompts (nlpaug
flow), and re-encode class names, prompts and augmented prompts (with IGN noise) through full
77-token text forwards. clap encodes class names and prompts once and the noisy views a chunk of
steps at a time with `Backbone.encode_texts` (each shared token prefix computed once). Both optimise
the same objective with the same sampling distribution, from identically built (zero-output)
adapters, in one process with the allocator settings of the clap CLI (`clap.runtime`).

    python -m benchmarks.bench_training [--threads 2] [--ref-steps 240] [--fast-steps 8000]

Writes benchmarks/results/training.json and training_curves.png (training_no_ign.* with --ign-tokens 0).
"""

from __future__ import annotations

import argparse
import logging
import time

import lightning as L
import numpy as np
import torch

from benchmarks.common import RESULTS, save_result
from clap.backbones.base import insert_embeddings, insertion_index
from clap.backbones.loading import load_backbone
from clap.prompts.augment import AugmentationConfig, PromptRegistry, seed_augmenters
from clap.prompts.classes import preset_classes
from clap.prompts.templates import class_prompts
from clap.runtime import keep_freed_memory
from clap.training.losses import clap_loss
from clap.training.modules import CLAPModule
from clap.training.text_data import PromptDataModule

TARGET = 20.0


def encode_noisy_full_context(backbone, texts, generator):
    """IGN inserted into the full 77-token sequence, truncated back to the context (reference style)."""
    tokens = backbone.tokenize(texts)
    model = backbone.model
    x = model.token_embedding(tokens)
    eot = tokens.argmax(-1)
    at = insertion_index(eot, "random", generator)
    noise = torch.randn(len(texts), 4, x.shape[2], generator=generator).to(x.device) * 0.02
    x, eot = insert_embeddings(x, eot, noise, at)
    return backbone._encode_embeddings(x[:, : tokens.shape[1]], eot)


def reference_losses(backbone, classes, steps, batch, seed, ign_tokens) -> tuple[list[float], float]:
    """Per-step losses and wall time of the reference-style loop."""
    torch.manual_seed(seed)
    module = CLAPModule(in_dim=backbone.embed_dim).to(backbone.device)
    opt = module.configure_optimizers()
    prompts = [class_prompts(c) for c in classes]
    registry = PromptRegistry(p for ps in prompts for p in ps)
    flow = AugmentationConfig().flow(registry)
    seed_augmenters(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    for step in range(steps):
        idx = [(step * batch + j) % len(classes) for j in range(batch)]
        texts = [prompts[c][int(rng.integers(480))].text() for c in idx]
        augmented = flow.augment(texts)
        with torch.no_grad():
            c_feat = backbone.encode_text_full([classes[c] for c in idx])
            t_feat = backbone.encode_text_full(texts)
            a_feat = (encode_noisy_full_context(backbone, augmented, generator) if ign_tokens
                      else backbone.encode_text_full(augmented))
        f = module.adapter
        loss = clap_loss(f(t_feat), f(a_feat), f(c_feat))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, time.perf_counter() - start


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def clap_losses(model, pretrained, steps, batch, seed, ign_tokens, reference_backbone, device: str = "cpu"
                ) -> tuple[list[float], float]:
    """Per-step losses and wall time (setup included) of clap's training pipeline (frozen encoders and the
    adapter on `device`)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    data = PromptDataModule(classes="pacs", model=model, pretrained=pretrained, batch_size=batch, seed=seed,
                            ign_tokens=ign_tokens, device=device)
    data.setup()  # loads the backbone now, from the same seed as the reference's
    same = all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(data.bank.backbone.state_dict().values(),
                                                  reference_backbone.state_dict().values()))
    if not same:
        raise RuntimeError("the two pipelines got different backbone weights; the comparison would be void")
    recorder = LossRecorder()
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, reload_dataloaders_every_n_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, callbacks=[recorder],
                        accelerator="gpu" if torch.device(device).type == "cuda" else "cpu", devices=1)
    torch.manual_seed(seed)
    trainer.fit(CLAPModule(), datamodule=data)
    return recorder.losses, time.perf_counter() - start


def window_means(losses: list[float], window: int) -> list[float]:
    return [float(np.mean(losses[i:i + window])) for i in range(0, len(losses) - window + 1, window)]


def plot(ref: list[float], fast: list[float], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for losses, label in ((ref, "reference loop (full 77-token re-encoding)"), (fast, "clap (frozen features)")):
        smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
        ax.plot(np.arange(len(smooth)) + 20, smooth, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("CLAP loss (20-step moving mean)")
    ax.set_title("Same objective and sampling, two pipelines", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--model", default="ViT-B-16", help="open_clip name, or 'embedded' for a quick run")
    parser.add_argument("--pretrained", default="random")
    parser.add_argument("--ref-steps", type=int, default=240)
    parser.add_argument("--fast-steps", type=int, default=8000, help="the default config's step count")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ign-tokens", type=int, default=4, help="0 measures the configs without IGN")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    allocator = keep_freed_memory()  # as the clap CLI does; both pipelines run under it
    from scipy import stats

    if args.model == "embedded":
        args.model = args.pretrained = None
    torch.manual_seed(args.seed)  # random-init backbones: both pipelines must get the same weights
    backbone = load_backbone(args.model, args.pretrained)
    classes = preset_classes("pacs")
    ref, ref_time = reference_losses(backbone, classes, args.ref_steps, args.batch, args.seed, args.ign_tokens)
    fast, fast_time = clap_losses(args.model, args.pretrained, args.fast_steps, args.batch, args.seed, args.ign_tokens,
                                  backbone)
    ref_per_step = ref_time / args.ref_steps
    ref_total = ref_per_step * args.fast_steps
    n = min(len(ref), len(fast))
    windows = 40
    ref_w, fast_w = window_means(ref[:n], windows), window_means(fast[:n], windows)
    ks = stats.ks_2samp(ref[n // 2:n], fast[n // 2:n])
    RESULTS.mkdir(exist_ok=True)
    name = "training" if args.ign_tokens else "training_no_ign"
    plot(ref[:n], fast[:n], RESULTS / f"{name}_curves.png")
    save_result(name, {
        "backbone": f"open_clip {args.model} ({args.pretrained} weights)", "classes": "PACS (7)",
        "config": f"CLAP defaults: batch 8, tau 0.5, tau_c 1, lambda 1, OSD/OCD/SPO 0.5, IGN {args.ign_tokens}",
        "reference_steps_measured": args.ref_steps, "reference_s_per_step": ref_per_step,
        "reference_s_for_default_steps (extrapolated)": ref_total,
        "clap_steps": args.fast_steps, "clap_s_total_including_setup": fast_time,
        "glibc_thresholds_raised_for_both": allocator,
        "speedup": ref_total / fast_time, "target_speedup": TARGET, "meets_target": ref_total / fast_time >= TARGET,
        "curve_window": windows, "reference_window_means": ref_w, "clap_window_means": fast_w,
        "second_half_ks_statistic": ks.statistic, "second_half_ks_pvalue": ks.pvalue,
        "second_half_mean": {"reference": float(np.mean(ref[n // 2:n])), "clap": float(np.mean(fast[n // 2:n]))},
    })


if __name__ == "__main__":
    main()
