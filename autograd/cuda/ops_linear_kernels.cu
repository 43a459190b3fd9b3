#include "autograd/cuda/ops_linear_kernels.h"

#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/memory_kernels.h"

namespace vdit::cuda {

namespace {

// Rows are cut into chunks of a fixed height, so the order of every addition depends on the
// shape only, never on the GPU: this pass sums each chunk's rows per column (while it narrows
// them), sum_partials then the chunks.
constexpr int64_t kChunkRows = 64;

// Thread t of block (x, y) narrows columns [kCols t', kCols t' + kCols) of the rows of chunk y,
// t' = x kThreads + t; kCols 8 reads and writes 16-byte groups (cols a multiple of 8, aligned).
template <int kCols>
__global__ void narrow_column_partials(const float* x, int64_t rows, int64_t cols, __nv_bfloat16* x16,
                                       float* partial) {
  const int64_t j = (blockIdx.x * int64_t{kThreads} + threadIdx.x) * kCols;
  if (j >= cols) return;
  const int64_t begin = blockIdx.y * kChunkRows, end = min(rows, begin + kChunkRows);
  float s[kCols] = {};
  for (int64_t r = begin; r < end; ++r) {  // a warp reads one row's run: coalesced
    float v[8];
    if constexpr (kCols == 8) {
      load8(x + r * cols + j, v);
      store8(x16 + r * cols + j, v);
    } else {
      v[0] = x[r * cols + j];
      store(x16, r * cols + j, v[0]);
    }
#pragma unroll
    for (int k = 0; k < kCols; ++k) s[k] += v[k];
  }
  if (partial)
#pragma unroll
    for (int k = 0; k < kCols; ++k) partial[blockIdx.y * cols + j + k] = s[k];
}

}  // namespace

void narrow_with_column_sums(const float* dy, int64_t rows, int64_t cols, __nv_bfloat16* dy16, float* sums,
                             bool accumulate, int device) {
  if (rows == 0 || cols == 0) {
    if (sums && !accumulate && cols > 0) fill(sums, DType::F32, cols, 0.0f, device);
    return;
  }
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  VDIT_CHECK(chunks <= 65535, "column sums over " << rows << " rows: more than 65535 chunks of " << kChunkRows);
  const Tensor partial = sums ? Tensor::empty({chunks, cols}, DType::F32, Device::cuda(device)) : Tensor();
  float* p = sums ? static_cast<float*>(partial.storage()) : nullptr;
  DeviceGuard guard(device);
  const bool wide = cols % 8 == 0 && aligned16(dy) && aligned16(dy16);
  const int64_t per_thread = wide ? 8 : 1;
  const dim3 grid(static_cast<unsigned>((cols / per_thread + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
  if (wide) narrow_column_partials<8><<<grid, kThreads, 0, stream(device)>>>(dy, rows, cols, dy16, p);
  else narrow_column_partials<1><<<grid, kThreads, 0, stream(device)>>>(dy, rows, cols, dy16, p);
  VDIT_CUDA_CHECK_LAUNCH();
  if (sums) sum_partials(p, chunks, cols, sums, 1.0f, accumulate, device);
}

}  // namespace vdit::cuda
