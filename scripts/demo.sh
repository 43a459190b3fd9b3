#!/usr/bin/env bash
# The main job on the embedded default: build vditkit, make a tiny Wan-architecture model and a
# synthetic latent dataset, pretrain the model on it, then knock out block 2 (fresh weights) and
# retrain only that block with everything else frozen, watching its loss come back.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
out=${VDITKIT_DEMO_OUT:-demo-out}
rm -rf "$out"
mkdir -p "$out"
vditkit=./build/vditkit
$vditkit create --preset tiny --seed 0 --out "$out/tiny.h5"
$vditkit make-data --preset tiny --samples 64 --seed 0 --out "$out/data.h5"
$vditkit inspect "$out/tiny.h5"
echo "== pretraining the tiny model (all layers)"
$vditkit retrain --model "$out/tiny.h5" --data "$out/data.h5" --layers all --init keep \
  --steps 400 --batch-size 4 --lr 2e-3 --warmup 20 --shift 1 --out "$out/pretrain"
echo "== retraining block 2 from fresh weights, everything else frozen"
$vditkit retrain --model "$out/pretrain/checkpoint-000400/model.h5" --data "$out/data.h5" --layers 2 \
  --init reinit --steps 300 --batch-size 4 --lr 2e-3 --warmup 20 --shift 1 --checkpoint-every 100 \
  --out "$out/retrain"
echo "outputs in $out/ (train_log.jsonl and checkpoints in each run directory)"
