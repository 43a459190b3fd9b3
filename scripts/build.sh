#!/usr/bin/env bash
# Installs the dependencies (when run as root) and builds vditkit in Release mode into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  ./scripts/install-deps.sh
else
  ./scripts/install-deps.sh || echo "build: continuing without installing (not root)" >&2
fi
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
