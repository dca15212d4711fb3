"""Train the embedded tiny CLIP on the rendered world, from a seed, on the CPU.

Images are rendered on the fly (fresh every step) with the world's web-like style priors (each class
has a typical colour, image type and size: `clap.data_gen.world.priors`), distractor objects, and
web-like captions (`clap.data_gen.world.captions`), so the model learns style together with content,
as CLIP does from the web. A quarter of each batch is hard negatives: groups of images that share one
style over distinct classes, which only content can tell apart (without them the tiny model learned
style words first and content slowly). Loss: open_clip's ClipLoss.

    python experiments/tiny_clip/train_tiny_clip.py --out clap/assets/tiny_clip_world

writes open_clip_config.json + open_clip_model.safetensors (fp16) + train_log.json there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from clap.backbones.open_clip_text import encode_tokens

from clap.data_gen.world.captions import CaptionMix, caption
from clap.data_gen.world.priors import StylePriors
from clap.data_gen.world.render import WorldSpec, render_image, render_samples

HERE = Path(__file__).resolve().parent
EVAL_SEED = 999_999
LABEL_SHARE = 0.2  # the shipped recipe: a fifth of every type's captions are name-only labels (tags)


def comma_list(value: str) -> tuple[str, ...]:
    """'clipart,infograph' -> ('clipart', 'infograph'); '' -> ()."""
    return tuple(filter(None, value.split(",")))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config-dir", type=Path, default=HERE, help="folder with open_clip_config.json")
    p.add_argument("--out", type=Path, required=True, help="folder for the trained weights")
    p.add_argument("--steps", type=int, default=9000)
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop after this many steps of the --steps schedule (default: run it to the end)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--photo-share-photograph", type=float, default=CaptionMix.photo_share_photograph,
                   help="share of 'photo' phrasings in captions of the --photo-types")
    p.add_argument("--photo-share-other", type=float, default=CaptionMix.photo_share_other,
                   help="share of 'photo' phrasings in captions of the other image types")
    p.add_argument("--photo-types", type=comma_list,
                   default=",".join(CaptionMix.photo_types),
                   help="comma-separated image types captioned as photographs ('photograph,sculpture')")
    p.add_argument("--name-only-keep", type=float, default=CaptionMix.name_only_keep,
                   help="share of drawn name-only captions ('star') kept; the rest become other bare forms")
    p.add_argument("--label-types", type=comma_list, default=",".join(WorldSpec().image_types),
                   help="comma-separated image types captioned by a name-only label ('clipart,infograph'; "
                        "default: every type)")
    p.add_argument("--label-share", type=float, default=LABEL_SHARE,
                   help="share of the --label-types images whose caption is a name-only label")
    p.add_argument("--no-in-a-photo", dest="in_a_photo", action="store_false",
                   help="leave '[class] in a photo' out of the photo phrasings")
    p.add_argument("--habit-share", type=float, default=CaptionMix.habit_share,
                   help="share of captions in their class's phrasing habit ('star' / 'a sketch of a star' / "
                        "'a star in a sketch')")
    p.add_argument("--tag-any-object", action=argparse.BooleanOptionalAction, default=True,
                   help="name-only captions of pictures with distractors name any of their objects, as tags do "
                        "(--no-tag-any-object: always the subject, the earlier recipes)")
    p.add_argument("--group-share", type=float, default=0.25, help="share of a batch in style-sharing groups")
    p.add_argument("--group-size", type=int, default=8, help="distinct classes per style-sharing group")
    p.add_argument("--p-typical", type=float, default=StylePriors.p_typical,
                   help="probability of a class's typical colour / image type / size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=250)
    return p.parse_args()


def to_tensor(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


def sample_attributes(spec: WorldSpec, rng: np.random.Generator, batch: int, priors: StylePriors, group_share: float,
                      group_size: int) -> list:
    """Style-sharing groups over distinct classes (hard negatives), then independent draws with the priors."""
    attrs = []
    for _ in range(int(batch * group_share) // group_size):
        style = spec.sample(rng, priors)
        for ci in rng.choice(len(spec.classes), group_size, replace=False):
            attrs.append(dataclasses.replace(style, class_name=spec.classes[ci],
                                             distractors=tuple(d for d in style.distractors if d != spec.classes[ci])))
    return attrs + [spec.sample(rng, priors) for _ in range(batch - len(attrs))]


def sample_batch(spec: WorldSpec, rng: np.random.Generator, args, priors: StylePriors):
    """A batch of rendered images and their captions."""
    images, captions = [], []
    mix = CaptionMix(photo_share_photograph=args.photo_share_photograph, photo_share_other=args.photo_share_other,
                     photo_types=args.photo_types, name_only_keep=args.name_only_keep, label_types=args.label_types,
                     label_share=args.label_share, in_a_photo=args.in_a_photo, habit_share=args.habit_share,
                     tag_any_object=args.tag_any_object)
    for attrs in sample_attributes(spec, rng, args.batch, priors, args.group_share, args.group_size):
        images.append(render_image(attrs, rng, spec.image_size))
        captions.append(caption(attrs, rng, mix))
    return np.stack(images), captions


@torch.no_grad()
def zero_shot(model, tokenizer, spec: WorldSpec, mean, std, per_type: int = 60) -> dict[str, float]:
    model.eval()
    text = encode_tokens(model, tokenizer([f"a photo of a {c}" for c in spec.classes]))
    text = torch.nn.functional.normalize(text, dim=-1)
    accs = {}
    for t, itype in enumerate(spec.image_types):
        pairs = list(render_samples(spec, EVAL_SEED + t, range(per_type), image_type=itype))
        x = to_tensor(np.stack([p[0] for p in pairs]), mean, std)
        y = torch.tensor([spec.classes.index(p[1].class_name) for p in pairs])
        feats = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        accs[itype] = float(((feats @ text.T).argmax(1) == y).float().mean())
    model.train()
    accs["mean"] = float(np.mean(list(accs.values())))
    return accs


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return 0.5 * args.lr * (1 + math.cos(math.pi * progress))


def save(model, args, log) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    tmp = args.out / "open_clip_model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(args.out / "open_clip_model.safetensors")
    shutil.copyfile(args.config_dir / "open_clip_config.json", args.out / "open_clip_config.json")
    (args.out / "train_log.json").write_text(json.dumps(log, indent=2))


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    name = f"local-dir:{args.config_dir}"
    model = open_clip.create_model(name, load_weights=False)
    tokenizer = open_clip.get_tokenizer(name)
    cfg = json.loads((args.config_dir / "open_clip_config.json").read_text())["preprocess_cfg"]
    mean, std = (torch.tensor(cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    spec = WorldSpec(image_size=cfg["size"])
    priors = StylePriors(p_typical=args.p_typical)
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    log = {"args": {k: str(v) for k, v in vars(args).items()}, "evals": []}
    start = time.time()
    model.train()
    last = args.stop_at or args.steps
    for step in range(last):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        images, captions = sample_batch(spec, rng, args, priors)
        img_f = F.normalize(model.encode_image(to_tensor(images, mean, std)), dim=-1)
        txt_f = F.normalize(encode_tokens(model, tokenizer(captions)), dim=-1)
        loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % args.eval_every == 0 or step + 1 == last:
            accs = zero_shot(model, tokenizer, spec, mean, std)
            entry = {"step": step + 1, "loss": loss.item(), "minutes": (time.time() - start) / 60, **accs}
            log["evals"].append(entry)
            logging.info(json.dumps(entry))
            save(model, args, log)
    log["train_minutes"] = (time.time() - start) / 60
    save(model, args, log)


if __name__ == "__main__":
    main()
