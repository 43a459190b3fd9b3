#!/usr/bin/env bash
# CI's CUDA step: where a CUDA toolkit is installed, builds the CUDA variant into build-cuda/ (so
# a change that breaks it fails CI) and runs the GPU test suites, which skip without a GPU. The
# CPU suite already ran in the CPU build; its code paths are the same in this one.
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
if [ ! -x "$nvcc" ]; then
  echo "test-cuda: no CUDA toolkit at $nvcc: CUDA build skipped"
  exit 0
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DVDITKIT_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" "${launcher[@]}" >/dev/null
cmake --build build-cuda -j"$(nproc 2>/dev/null || echo 2)"
# Every suite defined in tests/cuda/ and the device tests (parameterised ones carry a prefix).
shopt -s nullglob
suites=$(cat tests/cuda/*.cpp tests/cuda/*.cu tests/test_device.cpp | grep -o '^TEST[_FP]*( *[A-Za-z0-9_]*' |
         sed 's/.*( */*/' | sort -u | sed 's/$/.*/' | paste -sd:)
build-cuda/vditkit-tests --gtest_filter="$suites"
