#pragma once
// What this CPU can run, read once from cpuid (and xgetbv: the OS must save the wider
// registers too). Picks kernels at run time (blas.cpp, gemm_bf16.cpp) and names the machine in
// benchmark headers.
#include <string>

namespace vdit {

struct CpuFeatures {
  std::string model;         // the brand string, e.g. "Intel(R) Xeon(R) Platinum 8480+"
  bool avx2 = false;         // with FMA
  bool avx512 = false;       // F, CD, BW, DQ and VL: the set OpenBLAS's SkylakeX kernels use
  bool avx512_bf16 = false;  // vdpbf16ps: bf16 dot products into fp32
  bool amx_bf16 = false;     // AMX tiles with bf16 products
};

const CpuFeatures& cpu_features();
// "AVX2 AVX-512 AVX512-BF16 AMX-BF16", the features present, for headers.
std::string isa_summary(const CpuFeatures& cpu);

}  // namespace vdit
