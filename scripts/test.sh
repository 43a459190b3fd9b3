#!/usr/bin/env bash
# Installs, builds and runs every test (GoogleTest through ctest). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 1200 -j1
