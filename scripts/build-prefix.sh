#!/usr/bin/env bash
# On a GPU machine with a CUDA toolkit but no Debian packages (and no internet): unpacks the
# .deb files of scripts/fetch-debs.sh into a prefix (never /), re-points their absolute symlinks
# into it, and builds vditkit with CUDA and without video I/O against it.
#   scripts/build-prefix.sh [--configure-only]
# Environment: VDITKIT_DEBS (default .debs), VDITKIT_PREFIX (default .prefix in the checkout),
# VDITKIT_BUILD_DIR (default build-cuda), CUDA_HOME (default /usr/local/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
debs=${VDITKIT_DEBS:-$root/.debs}
prefix=$(realpath -m "${VDITKIT_PREFIX:-$root/.prefix}")
build=${VDITKIT_BUILD_DIR:-build-cuda}
cuda=${CUDA_HOME:-/usr/local/cuda}

[ "$prefix" != / ] || { echo "build-prefix: refusing to unpack into /" >&2; exit 1; }
compgen -G "$debs/*.deb" >/dev/null || { echo "build-prefix: no .deb files in $debs (run scripts/fetch-debs.sh on a connected Debian 12 machine)" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "build-prefix: needs dpkg (for dpkg -x)" >&2; exit 1; }
[ -x "$cuda/bin/nvcc" ] || { echo "build-prefix: no nvcc at $cuda/bin/nvcc (set CUDA_HOME)" >&2; exit 1; }

mkdir -p "$prefix"
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$prefix"; done
# Debian's packages link some files absolutely (/usr/lib/...): point those into the prefix.
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  case "$target" in
    "$prefix"/*) ;;
    /*) ln -sfn "$prefix$target" "$link" ;;
  esac
done < <(find "$prefix" -type l -print0)

lib=$prefix/usr/lib/x86_64-linux-gnu
# zlib comes from the system (the prefix has only its headers): a second libz would shadow it.
zlib=$(ldconfig -p 2>/dev/null | awk '/libz\.so\.1 .*x86-64/ && !found {found = $NF} END {print found}')
[ -n "$zlib" ] || zlib=$(ls /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -1)
[ -n "$zlib" ] || { echo "build-prefix: no system libz.so.1" >&2; exit 1; }

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DVDITKIT_CUDA=ON -DVDITKIT_VIDEO=OFF -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" \
  -DCMAKE_PREFIX_PATH="$prefix/usr" -DCMAKE_IGNORE_PREFIX_PATH=/usr \
  -DHDF5_ROOT="$lib/hdf5/serial" -DHDF5_C_INCLUDE_DIR="$prefix/usr/include/hdf5/serial" \
  -DZLIB_INCLUDE_DIR="$prefix/usr/include" -DZLIB_LIBRARY="$zlib"
if [ "${1:-}" != --configure-only ]; then
  cmake --build "$build" -j"$(nproc)"
fi
echo "build-prefix: built in $build; run with"
echo "  export LD_LIBRARY_PATH=$lib:$lib/hdf5/serial:$lib/openblas-openmp"
echo "  export VDITKIT_OPENBLAS=$lib/openblas-openmp/libopenblas.so.0"
echo "and start PyTorch's python3 without it (env -u LD_LIBRARY_PATH; vditkit-bench gpu does)."
