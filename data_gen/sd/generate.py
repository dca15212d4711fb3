"""Attribute prompts -> images through any diffusers text-to-image pipeline.

Deterministic per-image seeds, batched prompts, resumable (existing images are skipped, every image
is written atomically), and multi-process through accelerate: `accelerate launch --multi_gpu -m
clap.cli.main generate ...` (or `torchrun --nproc_per_node N -m clap.cli.main generate ...` on CPUs)
splits the job list with accelerate's own `split_between_processes`; each rank writes its images
and a manifest shard, and the main process merges the shards at the end.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from clap.errors import ClapError, first_line
from clap.extras import require
from clap.data_gen.sd.defaults import DEFAULT_MODEL, REMOVED_PREFIX, SCHEDULERS
from clap.data_gen.sd.jobs import DEFAULT_SUFFIX, Job, build_jobs
from clap.data_gen.sd.manifest import append_rows, merge_shards, shard_path
from clap.fileio import claim_output_folder, save_image_atomic
from clap.options import NON_NEGATIVE, SEED, Count, Text, check_options, resolve_device

logger = logging.getLogger(__name__)

SETTINGS_FILE = "generation.json"


LIMITS = {"model": Text(what="a diffusers model id or folder"), "steps": Count(), "guidance": NON_NEGATIVE,
          "height": Count(8), "width": Count(8), "negative_prompt": Text(what="a non-empty negative prompt"),
          "images_per_prompt": Count(), "prompts_per_class": Count(), "batch_size": Count(),
          "suffix": Text(empty_ok=True, what="a string"), "seed": SEED}


@dataclass(frozen=True)
class GenerationConfig:
    """Generation settings (defaults after the method: SD 2.1-class model, DPM-Solver++, 512 px)."""

    model: str = DEFAULT_MODEL
    scheduler: str = "dpm-solver++"
    steps: int = 25
    guidance: float = 7.5
    height: int = 512
    width: int = 512
    negative_prompt: str | None = None
    images_per_prompt: int = 1
    prompts_per_class: int | None = None
    batch_size: int = 4
    suffix: str = DEFAULT_SUFFIX
    seed: int = 0
    fp16: bool = False
    attention_slicing: bool = False

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ClapError(f"unknown scheduler '{self.scheduler}'; use one of {', '.join(SCHEDULERS)}")
        check_options(LIMITS, vars(self))
        if self.height % 8 or self.width % 8:
            raise ClapError(f"image size {self.width}x{self.height} must be a multiple of 8")

    def settings(self) -> dict:
        """What decides the pixels (recorded in generation.json and each manifest row)."""
        keep = ("model", "scheduler", "steps", "guidance", "height", "width", "negative_prompt", "suffix", "seed")
        return {k: getattr(self, k) for k in keep}


def load_pipeline(config: GenerationConfig, device: torch.device):
    """The diffusers pipeline from a local folder or hub id; fails fast when it cannot be had."""
    import diffusers
    from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    from clap.hub import HUB_HOST, hub_offline, reachable

    if config.fp16 and device.type != "cuda":
        raise ClapError("fp16 needs a CUDA device; drop `fp16` on the CPU")
    # diffusers took `torch_dtype` until 0.40 and `dtype` since (torch_dtype is deprecated there)
    dtype_key = "dtype" if _version_tuple(diffusers.__version__) >= (0, 40) else "torch_dtype"
    dtype = {dtype_key: torch.float16 if config.fp16 else torch.float32}
    local = Path(config.model).expanduser()
    if local.exists() and not (local / "model_index.json").is_file():
        raise ClapError(f"{local} is not a diffusers pipeline folder (no model_index.json)")
    try:
        pipe = DiffusionPipeline.from_pretrained(str(local) if local.exists() else config.model, **dtype,
                                                 local_files_only=True)
    except (OSError, ValueError) as e:
        if local.exists():
            raise ClapError(f"cannot load the pipeline in {local}: {str(e).splitlines()[0]}") from None
        if hub_offline() or not reachable(HUB_HOST):
            raise ClapError(f"pipeline '{config.model}' is not in the local cache and the hub cannot be reached; "
                            "download it elsewhere and pass its folder as `model`") from None
        try:
            pipe = DiffusionPipeline.from_pretrained(config.model, **dtype)
        except (OSError, ValueError) as e:
            raise ClapError(f"cannot load pipeline '{config.model}' from the hub ({first_line(e, 120)}); "
                            f"{mirror_hint(config.model)}") from None
    schedulers = {"dpm-solver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
                  "ddim": (DDIMScheduler, {}), "euler": (EulerDiscreteScheduler, {})}
    if config.scheduler in schedulers:
        cls, extra = schedulers[config.scheduler]
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **extra)
    if config.attention_slicing:
        pipe.enable_attention_slicing()
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def mirror_hint(model: str) -> str:
    """What to use instead of a hub id that could not be loaded."""
    if model.startswith(REMOVED_PREFIX):
        return (f"stabilityai removed its stable-diffusion-2 repos in November 2025; use the community mirror "
                f"(`model`) {DEFAULT_MODEL}")
    return f"check the id, or use the default, the community mirror {DEFAULT_MODEL}"


def _version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor) of a version string such as '0.42.1' or '0.40.0.dev0'."""
    return tuple(int(part) for part in version.split(".")[:2])


def _claim(root: Path, config: GenerationConfig, classes: Sequence[str]) -> None:
    request = {**config.settings(), "classes": list(classes), "images_per_prompt": config.images_per_prompt,
               "prompts_per_class": config.prompts_per_class}
    claim_output_folder(root, SETTINGS_FILE, request, "generation")


def _generate_batch(pipe, jobs: list[Job], config: GenerationConfig):
    generators = [torch.Generator(device="cpu").manual_seed(job.seed) for job in jobs]
    negative = [config.negative_prompt] * len(jobs) if config.negative_prompt else None
    # One CPU generator per image: diffusers draws each sample's noise from its own generator,
    # so an image's pixels depend on its seed, not on the batch it lands in.
    out = pipe(prompt=[job.prompt for job in jobs], negative_prompt=negative, num_inference_steps=config.steps,
               guidance_scale=config.guidance, height=config.height, width=config.width,
               generator=generators, output_type="pil")
    return out.images


def generate(classes: Sequence[str], out: str | Path, config: GenerationConfig, device: str = "auto",
             progress: bool = True) -> Path | None:
    """Generate every missing image on `device` ("auto": CUDA when this machine has it); returns the merged
    manifest (on the main process)."""
    require("sd", "diffusers", "accelerate", what="Stable Diffusion synthesis (clap generate)")
    from accelerate import PartialState

    device = resolve_device(device)
    state = PartialState(cpu=torch.device(device).type == "cpu")
    root = Path(out)
    if state.is_main_process:
        _claim(root, config, classes)
    state.wait_for_everyone()
    jobs = build_jobs(classes, config.images_per_prompt, config.seed, config.suffix, config.prompts_per_class)
    target = torch.device(device if state.num_processes == 1 else state.device)
    with state.split_between_processes(jobs) as mine:
        todo = [job for job in mine if not (root / job.relpath).is_file()]
        if todo:
            pipe = load_pipeline(config, target)
            shard = shard_path(root, state.process_index)
            batches = [todo[i:i + config.batch_size] for i in range(0, len(todo), config.batch_size)]
            bar = tqdm(total=len(todo), desc=f"generating (rank {state.process_index})", unit="img",
                       disable=not progress, position=state.process_index)
            for batch in batches:
                images = _generate_batch(pipe, batch, config)
                # Rows first: a kill between the two leaves rows without images (dropped at the merge),
                # never an image without its row (which a resumed run would skip and so never list).
                append_rows(shard, [{**job.record(), **config.settings(), "rank": state.process_index}
                                    for job in batch])
                for job, image in zip(batch, images):
                    save_image_atomic(image, root / job.relpath)
                bar.update(len(batch))
            bar.close()
    state.wait_for_everyone()
    if state.is_main_process:
        return merge_shards(root, [job.relpath for job in jobs])
    return None


def config_from_args(**kwargs) -> GenerationConfig:
    """A GenerationConfig from keyword arguments, ignoring those left as None."""
    fields = {f.name for f in dataclasses.fields(GenerationConfig)}
    return GenerationConfig(**{k: v for k, v in kwargs.items() if k in fields and v is not None})
