#pragma once
// The one kernel the GEMM ops need beside cuBLASLt: a bias gradient.
#include <cstdint>

namespace vdit::cuda {

// out[j] += sum over r of x[r * cols + j], fp32, in a fixed order (no atomics): the same bits
// on every run.
void add_column_sums(const float* x, int64_t rows, int64_t cols, float* out, int device);

}  // namespace vdit::cuda
