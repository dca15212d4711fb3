#!/usr/bin/env bash
# Reproduce the paper's tables for one dataset with real CLIP ViT-B/16 weights on a GPU machine.
#
#   experiments/paper/reproduce.sh pacs /data/PACS            # root/domain/class/image
#
# Steps: (1) Stable Diffusion 2.1 images of the attribute prompts (Im.Aug's training data),
# (2) train the Im.Aug adapter, (3) train the CLAP adapter with the method's per-dataset config,
# (4) evaluate CLIP, Im.Aug and CLAP: zero-shot (C/PC/CP/NC), few-shot probes, adversarial attacks,
# disentanglement probes, t-SNE and an alpha sweep. Weights must be reachable (hub or local cache):
# pass --model/--pretrained local files through EXTRA if the machine is offline.
# Not run in CI. Use `accelerate launch --multi_gpu -m clap.cli.main generate ...` to spread step 1 over GPUs.
set -euo pipefail
dataset=${1:?dataset: pacs, vlcs, officehome or domainnet}
data_root=${2:?root/domain/class/image folder of the dataset}
out=${3:-paper_runs/$dataset}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"

clap generate --classes "$dataset" --out "$out/sd_images" --device cuda --fp16 --batch-size 16 \
  --prompts-per-class "${PROMPTS_PER_CLASS:-480}"
latent=$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['model']['init_args']['latent_dim'])" \
  "$here/experiments/configs/${dataset}_clap.yaml")
clap train --model ImAugModule --model.latent_dim "$latent" --trainer.max_steps 8000 \
  --data ImageDataModule --data.root "$out/sd_images" --data.model ViT-B-16 --data.pretrained openai \
  --data.batch_size 64 --data.device cuda --trainer.default_root_dir "$out/runs/imaug" --out "$out/adapters/imaug"
clap train --config "$here/experiments/configs/${dataset}_clap.yaml" --out "$out/adapters/clap"
clap eval all --dataset "$data_root" --model ViT-B-16 --pretrained openai --device cuda \
  --adapter "Im.Aug=$out/adapters/imaug" --adapter "CLAP=$out/adapters/clap" \
  --attack-images 0 --cache "$out/feature_cache" --out "$out/report"
echo "tables: $out/report/all.md"
