#pragma once
// bf16 GEMMs through cuBLASLt, in row-major terms: C[m, n] = op(A) op(B) (+ bias[n]) + beta C,
// bf16 operands, fp32 accumulation, C in bf16 or fp32. One handle per device; a workspace taken
// once from the caching allocator; the matmul descriptor, layouts and the heuristic's algorithm
// cached per shape, so a training step, repeating the same shapes, queries the heuristic only in
// its first step. Everything is enqueued on cuda::stream(device).
#include <cuda_bf16.h>

#include <cstdint>

#include "autograd/tensor.h"

namespace vdit::cuda {

struct GemmArgs {
  bool trans_a = false, trans_b = false;  // op(X) = X^T: X is stored [k, m] (A) or [n, k] (B)
  int64_t m = 0, n = 0, k = 0;
  const __nv_bfloat16* a = nullptr;
  int64_t lda = 0;  // row stride of A as stored
  const __nv_bfloat16* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;  // output, overwritten (beta 0) or accumulated into (beta 1)
  DType c_dtype = DType::BF16;
  int64_t ldc = 0;
  float beta = 0.0f;
  const void* bias = nullptr;  // [n] of c_dtype, added to every row in the epilogue, or null
  // Strided batch: `batch` GEMMs, operand i at base + i * stride (a stride of 0 shares it).
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
};

void gemm(const GemmArgs& args, int device);

// The milliseconds of one bf16 GEMM [m, k] x [k, n] -> bf16 over constant operands (timing
// only), the mean of `repeats` runs after a warm-up, timed with CUDA events on the stream.
double time_bf16_gemm(int64_t m, int64_t n, int64_t k, int repeats, int device);

}  // namespace vdit::cuda
