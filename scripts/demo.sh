#!/usr/bin/env bash
# The main job on the embedded default model (models/default, a small pixel-space Wan-architecture
# VDiT trained by vditkit on generated clips of moving shapes): diagnose its attention, retrain
# the two blocks the diagnostics rank worst from fresh weights with everything else frozen
# (checkpoints with diagnostics), and sample a clip before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
out=${VDITKIT_DEMO_OUT:-demo-out}
model=models/default/model.h5
vditkit=./build/vditkit
rm -rf "$out"
mkdir -p "$out"
$vditkit inspect "$model"
echo "== the probe and training clips (the recipe the default model was trained on, another seed)"
$vditkit make-dataset --generate 64 --frames 4 --size 16x16 --text-dim 64 --text-len 16 --seed 1 --out "$out/data.h5"
echo "== diagnosing the default model's attention"
$vditkit diagnose --model "$model" --data "$out/data.h5" --shift 1 --out "$out/diagnose"
prompt="a red square moves right"
$vditkit sample --model "$model" --prompt "$prompt" --frames 4 --size 16x16 --steps 20 --guidance 3 --shift 1 \
  --out "$out/before.mp4"
echo "== retraining the two worst blocks (auto:2) from fresh weights, everything else frozen"
$vditkit retrain --model "$model" --data "$out/data.h5" --layers auto:2 --init reinit --steps 300 --batch-size 8 \
  --lr 1e-3 --warmup 20 --shift 1 --checkpoint-every 100 --out "$out/retrain"
$vditkit sample --model "$out/retrain/checkpoint-000300/model.h5" --prompt "$prompt" --frames 4 --size 16x16 \
  --steps 20 --guidance 3 --shift 1 --out "$out/after.mp4"
echo "report (diagnostics before/after): $out/retrain/checkpoint-000300/report.html"
echo "loss log: $out/retrain/train_log.jsonl; samples: $out/before.mp4, $out/after.mp4"
