#!/usr/bin/env bash
# Sanitizers and fuzzing (README "Fuzzing and sanitizers"), in one clang build, build-fuzz/,
# with AddressSanitizer + UBSan (the library compiles once, for both steps):
#  1. builds the tests of input handling and file I/O (vditkit-io-tests, with the command they
#     run) and runs them under the sanitizers (every C++ test, from vditkit-tests, with
#     SANITIZE_ALL=1; see below);
#  2. builds the libFuzzer targets of fuzz/ and runs each from its committed seed corpus, as
#     many at a time as there are cores: for FUZZ_SECONDS (default 60), or, with FUZZ_RUNS=N,
#     for exactly N executions from seed 1 and stopping at the first finding, which makes a run
#     repeatable (CI uses it: what passed here passes there). Prints per target the seconds,
#     executions and findings (crashes, sanitizer reports and leaks, inputs over the memory
#     limit, hangs); each such input is kept in build-fuzz/findings/.
# Prints each step's seconds. Exits non-zero on a failing test or any fuzzer finding. Run
# scripts/build.sh (or test.sh) first on a fresh machine: it installs the dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${FUZZ_SECONDS:-60}

# Which tests run under the sanitizers. CI (2 cores, 25 minutes for everything) has room for
# the tests of input handling and file I/O only: the readers and writers of every format, their
# error paths, checkpoints, resume (the kill-and-resume soak, the full disk) and command-line
# parsing; vditkit-io-tests holds their files (CMakeLists.txt), and the suites below are
# chosen from it. The numeric tests (ops, gradient checks, attention, training curves, parity)
# run unsanitized in scripts/test.sh. SANITIZE_ALL=1 builds and runs every C++ test instead;
# even then the PyTorch parity tests and the Python references' self-checks stay out (minutes
# each under ASan, arithmetic only, and the latter no C++ at all).
if [ "${SANITIZE_ALL:-0}" = 1 ]; then
  tests=vditkit-tests
  selection=(-E '(^io\.|Parity\.|_reference_selfcheck$)')
else
  tests=vditkit-io-tests
  selection=(-R '^io\.(Safetensors|ModelIo|Hdf5|LatentDataset|ForwardInputErrors|DiffusersNames|Checkpoint|RunState|AtomicFile|FuzzFindings|VideoIo|MakeDataset|RetrainCommand|ParallelErrors|Soak|FullDisk)')
fi

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan_suppressions.txt

start=$SECONDS
echo "== sanitize: build (clang, ASan + UBSan, build-fuzz/): $tests and the fuzz targets"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DVDITKIT_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j"$jobs" --target "$tests" fuzz-targets
echo "== sanitize: build took $((SECONDS - start)) s"

start=$SECONDS
echo "== sanitize: unit tests under ASan + UBSan"
(cd build-fuzz && ctest --output-on-failure --timeout 1200 -j1 "${selection[@]}")
echo "== sanitize: unit tests took $((SECONDS - start)) s"

start=$SECONDS
budget="$fuzz_seconds s"
[ -n "${FUZZ_RUNS:-}" ] && budget="$FUZZ_RUNS executions"
echo "== sanitize: fuzz targets, $budget each, $jobs at a time"
rm -rf build-fuzz/findings build-fuzz/logs
mkdir -p build-fuzz/findings build-fuzz/logs
# A huge allocation fails as it would with glibc (HDF5 then reports an error) instead of
# aborting; one over libFuzzer's -malloc_limit_mb (= -rss_limit_mb) is still a finding, and so
# is std::bad_alloc escaping a reader (fuzz/fuzz_input.h).
export ASAN_OPTIONS=$ASAN_OPTIONS:allocator_may_return_null=1

# One target. By time: fork mode keeps going after a finding (each input is saved in findings/),
# so one bad input does not end the run. By count: one process, N executions, stops at a finding.
# Writes "seconds executions findings" to logs/NAME.result.
fuzz_one() {
  local name=$1 new_inputs dict=() mode start executions
  new_inputs=$(mktemp -d)  # what this run adds; the committed corpus is only read
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  if [ -n "${FUZZ_RUNS:-}" ]; then
    mode=(-runs="$FUZZ_RUNS")
  else
    mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$fuzz_seconds")
  fi
  start=$(date +%s)
  "build-fuzz/fuzz/$name" "${mode[@]}" -timeout=10 -rss_limit_mb=2048 -seed=1 -print_funcs=0 "${dict[@]}" \
    -artifact_prefix="build-fuzz/findings/$name-" "$new_inputs" "fuzz/corpus/$name" \
    >"build-fuzz/logs/$name.log" 2>&1 || true
  # The last status line of either mode starts "#EXECUTIONS"; every finding is an artifact.
  executions=$(grep -oE '^#[0-9]+' "build-fuzz/logs/$name.log" | tail -1 | tr -d '#' || true)
  echo "$(($(date +%s) - start)) ${executions:-?} $(find build-fuzz/findings -name "$name-*" | wc -l)" \
    >"build-fuzz/logs/$name.result"
  rm -rf "$new_inputs"
}

targets=()
for target in build-fuzz/fuzz/fuzz_*; do targets+=("$(basename "$target")"); done
for name in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  fuzz_one "$name" &
done
wait

failed=0
printf '%-22s %8s %12s %8s\n' target seconds executions findings
for name in "${targets[@]}"; do
  read -r seconds executions findings <"build-fuzz/logs/$name.result"
  printf '%-22s %8s %12s %8s\n' "$name" "$seconds" "$executions" "$findings"
  [ "$findings" = 0 ] && [ "$executions" != "?" ] || failed=1  # no status line: it never ran
done
echo "== sanitize: fuzzing took $((SECONDS - start)) s"
if [ "$failed" -ne 0 ]; then
  echo "sanitize: fuzzing found inputs that crash, leak, hang or exhaust memory (build-fuzz/findings/;" \
       "logs in build-fuzz/logs/):" >&2
  ls build-fuzz/findings >&2
  exit 1
fi
