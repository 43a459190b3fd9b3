#!/usr/bin/env bash
# The main job on the embedded default. Until the default model ships, this builds vditkit,
# creates a small random Wan-architecture model and inspects it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
out=${VDITKIT_DEMO_OUT:-demo-out}
mkdir -p "$out"
./build/vditkit --help
./build/vditkit create --preset tiny --seed 0 --out "$out/tiny.safetensors"
./build/vditkit inspect "$out/tiny.safetensors"
