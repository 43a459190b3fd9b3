#pragma once
// The one kernel the GEMM ops need beside cuBLASLt: the backward's narrowing of the output
// gradient to bf16 (the GEMMs' operand), with the bias gradient's column sums in the same pass.
#include <cuda_bf16.h>

#include <cstdint>

namespace vdit::cuda {

// dy16 = bf16(dy) for dy [rows, cols] fp32; and, when `sums` is not null, sums[j] (+)= the sum
// over r of dy[r, j] in fp32, in a fixed order (no atomics): the same bits on every run.
// `accumulate` false overwrites sums.
void narrow_with_column_sums(const float* dy, int64_t rows, int64_t cols, __nv_bfloat16* dy16, float* sums,
                             bool accumulate, int device);

}  // namespace vdit::cuda
