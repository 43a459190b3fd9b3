#!/usr/bin/env bash
# Where the GPU time of one Wan2.1-1.3B block forward + backward at 32,760 tokens goes: runs
# `vditkit-bench gpu` under Nsight Compute, profiling only the kernels inside its NVTX range
# profile_block_32760 (one extra block step after the timed ones; PyTorch's figures are skipped),
# and prints the kernels summed by name, largest first, with their share of the total.
# Usage: scripts/profile-gpu.sh [path to vditkit-bench, default build-cuda/vditkit-bench]
#   [SECTION RANGE: another bench section and its NVTX range, e.g. gpu_diagnose_pieces
#    profile_diagnose_pieces for the statistics and the sparsified attention of one self-attention]
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-build-cuda/vditkit-bench}
section=${2:-gpu}
range=${3:-profile_block_32760}
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Clocks as the GPU runs them (ncu locks them to base by default); whatever ncu wrote is read
# even when the bench fails later on.
VDITKIT_TORCH_PYTHON=/bin/false "$ncu" --nvtx --nvtx-include "$range/" --clock-control none \
  --metrics gpu__time_duration.sum --print-units base --csv "$bench" "$section" > "$out" ||
  echo "profile-gpu: ncu exited with status $?" >&2
python3 - "$out" "$range" <<'PY'
import collections, csv, sys

# ncu's CSV rows are the quoted lines; the bench's own output is not quoted.
rows = list(csv.reader(line for line in open(sys.argv[1]) if line.startswith('"')))
if not rows:
    sys.exit(f"profile-gpu: ncu reported no kernels in the range {sys.argv[2]}")
header, rows = rows[0], rows[1:]
name, metric, value = (header.index(c) for c in ("Kernel Name", "Metric Name", "Metric Value"))
total_ns, count = collections.Counter(), collections.Counter()
for r in rows:
    if r[metric] == "gpu__time_duration.sum":
        total_ns[r[name]] += float(r[value].replace(",", ""))
        count[r[name]] += 1
grand = sum(total_ns.values())
print(f"{grand / 1e6:.2f} ms in {sum(count.values())} kernel launches (NVTX range {sys.argv[2]})")
for kernel, ns in total_ns.most_common():
    print(f"{ns / 1e6:9.3f} ms {100 * ns / grand:5.1f}% {count[kernel]:4d}x  {kernel[:150]}")
PY
