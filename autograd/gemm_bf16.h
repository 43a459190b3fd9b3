#pragma once
// Products with frozen bf16 weights. Where the CPU multiplies bf16 natively and faster than
// float32 (AMX-BF16 tiles; AVX512-BF16's vdpbf16ps when asked with VDITKIT_CPU_BF16=1) they run
// through oneDNN: the float32 operand is narrowed to bf16 once per call, every product of two
// bf16 values is exact in float32, and sums accumulate in float32. Elsewhere (or with
// VDITKIT_CPU_BF16=0) the weights are widened to float32 and go through OpenBLAS's sgemm.
//
// Accuracy: only the narrowing of the float32 operand is new: each of its values moves by at
// most 2^-9 of itself (round to nearest even to 8 significant bits), so an output moves by at
// most 2^-9 * sum_p |a_p b_p| beyond float32 rounding. That is the error of bf16 mixed
// precision training (PyTorch autocast), and the tolerance of tests/test_gemm_bf16.cpp.
#include <cstdint>

#include "autograd/cpu_features.h"

namespace vdit::gemm {

enum class Bf16Path { Native, Widen };
const char* bf16_path_name(Bf16Path path);  // "native (oneDNN, AMX-BF16)", ... "widen to fp32"

// The path for a CPU and `env_value`, the value of VDITKIT_CPU_BF16 (may be null): "0" widens
// everywhere; "1" goes native where the CPU has AVX512-BF16 or AMX-BF16; unset, native with
// AMX-BF16 only.
Bf16Path choose_bf16_path(const CpuFeatures& cpu, const char* env_value);
// This process's path: choose_bf16_path for this CPU and environment, decided once.
Bf16Path bf16_path();

// Row-major C[m, n] = A[m, k] op(B)[k, n] + beta C, beta 0 or 1; A float32, B bf16 stored
// [k, n] or, with trans_b, [n, k]. The native path only: callers check bf16_path() first.
void gemm_bf16(bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace vdit::gemm
