#!/usr/bin/env bash
# Installs vditkit's build and test dependencies from Debian's packages (run as root).
# Packages already present are skipped, so a second run costs a few dpkg queries.
#   --cuda  also a CUDA toolkit: the one in /usr/local/cuda (or CUDA_HOME) when present, else
#           Debian's nvidia-cuda-toolkit (CUDA 11.8, in the contrib and non-free components,
#           which are enabled for it).
set -euo pipefail
cuda=0
[ "${1:-}" = --cuda ] && cuda=1

packages=(
  cmake g++ make pkg-config
  libopenblas0-openmp libopenblas-openmp-dev
  # The pthread build too, for tests/test_blas.cpp: installing it makes it the system's default
  # libopenblas.so.0 (Debian's priority 100 against the OpenMP build's 95), the case where
  # vditkit must still load the OpenMP build by its own path.
  libopenblas0-pthread
  libdnnl-dev
  libhdf5-dev zlib1g-dev
  libboost-program-options-dev libboost-serialization-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
  nlohmann-json3-dev
  libopenmpi-dev openmpi-bin  # data-parallel retraining under mpirun (optional in CMake)
  libgtest-dev libbenchmark-dev
  clang libclang-rt-dev libomp-dev  # scripts/sanitize.sh: libFuzzer, ASan, UBSan
  python3 python3-torch python3-numpy python3-h5py
)

if [ $cuda -eq 1 ]; then
  if [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
    echo "install-deps: using the CUDA toolkit in ${CUDA_HOME:-/usr/local/cuda}"
  else
    packages+=(nvidia-cuda-toolkit)
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to apt-get install (run as root or with sudo)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" nvidia-cuda-toolkit "* ]] && ! apt-cache show nvidia-cuda-toolkit >/dev/null 2>&1; then
  . /etc/os-release
  echo "deb http://deb.debian.org/debian ${VERSION_CODENAME} contrib non-free non-free-firmware" \
    > /etc/apt/sources.list.d/vditkit-cuda.list
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
