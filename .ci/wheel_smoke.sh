#!/usr/bin/env bash
# Smoke test of an installed wheel, run from outside the source tree: `wheel_smoke.sh PATH/TO/clap`.
set -euo pipefail
clap="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python_bin=$(dirname "$clap")/python
"$python_bin" -c "import clap, sys; assert '/site-packages/' in clap.__file__, clap.__file__; print('clap from', clap.__file__)"
"$clap" info
"$clap" prompts --classes pacs --out "$work/prompts"
"$clap" world render --out "$work/world" --layout domains --images-per-class 2 --image-types sketch clipart --no-progress
"$clap" eval zeroshot --dataset "$work/world" --out "$work/report" --no-progress
test -s "$work/report/zeroshot.json"
"$clap" eval openness --dataset "$work/world" --out "$work/report" --orders 1 --repe --no-progress  # preset JSON
test -s "$work/report/openness.json"
echo "wheel smoke: passed"
