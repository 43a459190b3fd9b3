#include "autograd/cuda/ops_linear_kernels.h"

#include "autograd/cuda/runtime.h"
#include "autograd/tensor.h"

namespace vdit::cuda {

namespace {

// Rows are cut into chunks of a fixed height, so the order of every addition depends on the
// shape only, never on the GPU: pass 1 sums each chunk's rows per column, pass 2 the chunks.
constexpr int64_t kChunkRows = 64;
constexpr int kThreads = 256;

__global__ void chunk_sums(const float* x, int64_t rows, int64_t cols, float* partial) {
  const int64_t j = blockIdx.x * int64_t{kThreads} + threadIdx.x;
  if (j >= cols) return;
  const int64_t begin = blockIdx.y * kChunkRows, end = min(rows, begin + kChunkRows);
  float s = 0.0f;
  for (int64_t r = begin; r < end; ++r) s += x[r * cols + j];  // a warp reads one row's run: coalesced
  partial[blockIdx.y * cols + j] = s;
}

__global__ void add_chunks(const float* partial, int64_t chunks, int64_t cols, float* out) {
  const int64_t j = blockIdx.x * int64_t{kThreads} + threadIdx.x;
  if (j >= cols) return;
  float s = 0.0f;
  for (int64_t c = 0; c < chunks; ++c) s += partial[c * cols + j];
  out[j] += s;
}

}  // namespace

void add_column_sums(const float* x, int64_t rows, int64_t cols, float* out, int device) {
  if (rows == 0 || cols == 0) return;
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  VDIT_CHECK(chunks <= 65535, "column sums over " << rows << " rows: more than 65535 chunks of " << kChunkRows);
  const Tensor partial = Tensor::empty({chunks, cols}, DType::F32, Device::cuda(device));
  DeviceGuard guard(device);
  const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
  float* p = static_cast<float*>(partial.storage());
  chunk_sums<<<grid, kThreads, 0, stream(device)>>>(x, rows, cols, p);
  VDIT_CUDA_CHECK_LAUNCH();
  add_chunks<<<grid.x, kThreads, 0, stream(device)>>>(p, chunks, cols, out);
  VDIT_CUDA_CHECK_LAUNCH();
}

}  // namespace vdit::cuda
