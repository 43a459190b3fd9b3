#!/usr/bin/env bash
# On a connected Debian 12 machine: downloads (apt-get download, no root needed) the .deb files a
# CUDA build of vditkit needs on a GPU machine with no package manager or no internet, into
# .debs/ (git-ignored; it travels with the checkout). scripts/build-prefix.sh unpacks them there.
#
# What is fetched (HDF5, Boost, nlohmann-json, GoogleTest, Google Benchmark, OpenBLAS, oneDNN;
# about 39 MB): the -dev packages (headers, CMake configs, .so links) and the runtime closure of
# the libraries, minus what every Linux machine with a compiler has (libc, libstdc++, libgcc,
# libgomp, zlib). FFmpeg is left out (its closure is ~180 MB): the GPU build uses
# -DVDITKIT_VIDEO=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.debs}

dev=(
  libhdf5-dev libaec-dev zlib1g-dev
  libboost1.74-dev libboost-program-options1.74-dev libboost-serialization1.74-dev
  nlohmann-json3-dev libgtest-dev googletest libbenchmark-dev libdnnl-dev
)
runtime_roots=(
  libhdf5-103-1 libboost-program-options1.74.0 libboost-serialization1.74.0
  libbenchmark1debian libopenblas0-openmp libdnnl2
)
# Provided by the GPU machine's own system (and must not shadow it).
system='^(libc6|libstdc\+\+6|libgcc-s1|libgomp1|gcc-12-base|zlib1g)$'

mapfile -t runtime < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                         --no-replaces --no-enhances "${runtime_roots[@]}" |
                       grep -E '^[a-z0-9]' | sort -u | grep -Ev "$system")

mkdir -p "$out"
cd "$out"
rm -f ./*.deb
apt-get download "${dev[@]}" "${runtime[@]}" >/dev/null
echo "fetch-debs: $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in $(pwd)"
echo "fetch-debs: on the GPU machine run scripts/build-prefix.sh (it finds $out/ in the checkout)"
