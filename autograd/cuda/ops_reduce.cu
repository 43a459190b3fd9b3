// Sums and means over axes, the mean-squared-error loss, and the gradient movements the other
// ops share (reduce over broadcast axes, broadcast back). Every reduction runs in a fixed
// order set by the shapes alone: per-chunk partials in fp32, then the chunks summed in order
// (the loss and squared norms in double), so results are bit-identical run to run.
#include <algorithm>
#include <vector>

#include "autograd/cuda/allocator.h"
#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/register.h"
#include "autograd/grad_accumulate.h"

namespace vdit::cuda {

namespace {

// --- reduce over broadcast axes: out[k] = sum over r of src[kept(k) + reduced(r)] ---

// The reduced axes are the inner ones: a block sums chunk blockIdx.y of output blockIdx.x.
template <class T>
__global__ void reduce_inner_kernel(const T* src, Indexer<1> kept, Indexer<1> reduced, int64_t count,
                                    int64_t total, int64_t chunk, float* partials) {
  __shared__ float scratch[32];
  const int64_t k = blockIdx.x;
  int64_t ko[1], ro[1];
  kept.offsets(k, ko);
  const int64_t begin = blockIdx.y * chunk, end = min(total, begin + chunk);
  float s = 0.0f;
  for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) {
    reduced.offsets(r, ro);
    s += load(src, ko[0] + ro[0]);
  }
  s = block_reduce(s, scratch);
  if (threadIdx.x == 0) partials[blockIdx.y * count + k] = s;
}

// A kept axis is innermost: a thread sums chunk blockIdx.y of one output, neighbouring threads
// reading neighbouring elements.
template <class T>
__global__ void reduce_outer_kernel(const T* src, Indexer<1> kept, Indexer<1> reduced, int64_t count,
                                    int64_t total, int64_t chunk, float* partials) {
  const int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (k >= count) return;
  int64_t ko[1], ro[1];
  kept.offsets(k, ko);
  const int64_t begin = blockIdx.y * chunk, end = min(total, begin + chunk);
  float s = 0.0f;
  for (int64_t r = begin; r < end; ++r) {
    reduced.offsets(r, ro);
    s += load(src, ko[0] + ro[0]);
  }
  partials[blockIdx.y * count + k] = s;
}

// Output k = blockIdx.x 32 + threadIdx.x: the kGroups rows of threads each sum every kGroups-th
// chunk in order (a warp reads 32 neighbouring outputs of one chunk), then one thread adds the
// groups' sums in order. Many short chains instead of one thread per output walking every chunk.
constexpr int kGroups = 8;

__global__ void sum_partials_kernel(const float* partials, int64_t chunks, int64_t count, float* dst,
                                    float alpha, bool accumulate) {
  __shared__ float group_sums[kGroups][32];
  const int64_t k = blockIdx.x * int64_t{32} + threadIdx.x;
  float s = 0.0f;
  if (k < count)
    for (int64_t c = threadIdx.y; c < chunks; c += kGroups) s += partials[c * count + k];
  group_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || k >= count) return;
  float total = 0.0f;
#pragma unroll
  for (int g = 0; g < kGroups; ++g) total += group_sums[g][threadIdx.x];
  dst[k] = accumulate ? dst[k] + alpha * total : alpha * total;
}

template <class T>
__global__ void scale_into_kernel(float* dst, const T* src, int64_t n, float alpha, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float v = alpha * load(src, i);
    dst[i] = accumulate ? dst[i] + v : v;
  }
}

template <class T>
void reduce_typed(float* dst, const Shape& dst_shape, const T* src, const Shape& src_shape, float alpha,
                  bool accumulate, int device) {
  DeviceGuard guard(device);
  const cudaStream_t s = stream(device);
  const int64_t n = numel(src_shape), count = numel(dst_shape);
  if (count == n || n == 0) {
    if (n == 0 && !accumulate && count > 0) VDIT_CUDA_CHECK(cudaMemsetAsync(dst, 0, count * sizeof(float), s));
    if (n == 0) return;
    scale_into_kernel<<<blocks_for(n), kThreads, 0, s>>>(dst, src, n, alpha, accumulate);
    VDIT_CUDA_CHECK_LAUNCH();
    return;
  }
  // Split the source's axes into kept ones (dst's, in dst's order: output k is dst[k]) and
  // reduced ones (dst broadcasts along them).
  const Strides to_dst = broadcast_strides(dst_shape, src_shape), src_strides = contiguous_strides(src_shape);
  Shape kept_sizes, reduced_sizes;
  Strides kept_strides, reduced_strides;
  for (size_t d = 0; d < src_shape.size(); ++d) {
    const bool reduced = to_dst[d] == 0 && src_shape[d] > 1;
    (reduced ? reduced_sizes : kept_sizes).push_back(src_shape[d]);
    (reduced ? reduced_strides : kept_strides).push_back(src_strides[d]);
  }
  const Indexer<1> kept = make_indexer<1>(kept_sizes, {kept_strides});
  const Indexer<1> reduced = make_indexer<1>(reduced_sizes, {reduced_strides});
  const int64_t total = numel(reduced_sizes);
  const bool inner = reduced.inner_stride(0) == 1;
  // Chunk lengths depend on the shapes only (never on the GPU), so the order is fixed.
  const int64_t min_chunk = inner ? 8192 : 64;
  const int64_t chunk = std::max(min_chunk, (total + 65534) / 65535);
  const int64_t chunks = (total + chunk - 1) / chunk;
  const Tensor partials = Tensor::empty({chunks * count}, DType::F32, Device::cuda(device));
  if (inner) {
    const int threads = total >= 2048 ? kThreads : 32;
    reduce_inner_kernel<<<dim3(static_cast<unsigned>(count), static_cast<unsigned>(chunks)), threads, 0, s>>>(
        src, kept, reduced, count, total, chunk, out<float>(partials));
  } else {
    const auto blocks = static_cast<unsigned>((count + kThreads - 1) / kThreads);
    reduce_outer_kernel<<<dim3(blocks, static_cast<unsigned>(chunks)), kThreads, 0, s>>>(
        src, kept, reduced, count, total, chunk, out<float>(partials));
  }
  VDIT_CUDA_CHECK_LAUNCH();
  sum_partials(in<float>(partials), chunks, count, dst, alpha, accumulate, device);
}

__global__ void broadcast_into_kernel(float* dst, const float* src, Indexer<2> ix, int64_t n, float alpha,
                                      bool accumulate) {
  int64_t off[2];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    ix.offsets(i, off);
    const float v = alpha * src[off[1]];
    dst[off[0]] = accumulate ? dst[off[0]] + v : v;
  }
}

// --- sums of squares in double: per-block partials, then one block sums them in order ---

constexpr int kSquareBlocks = 1024;

template <class TA, class TB>
__global__ void squares_partial_kernel(const TA* a, const TB* b, int64_t n, double* partials) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const double d = static_cast<double>(load(a, i)) - (b ? static_cast<double>(load(b, i)) : 0.0);
    s += d * d;
  }
  s = block_reduce(s, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void squares_total_kernel(const double* partials, int count, double* total) {
  __shared__ double scratch[32];
  double s = threadIdx.x < count ? partials[threadIdx.x] : 0.0;
  s = block_reduce(s, scratch);
  if (threadIdx.x == 0) *total += s;
}

__global__ void mean_of_total_kernel(const double* total, int64_t n, float* out) {
  *out = static_cast<float>(*total / static_cast<double>(n));
}

// dp (+)= g, dt (-)= g; a fresh buffer (add_p, add_t false) is written.
template <class TP, class TT>
__global__ void mse_backward_kernel(const TP* p, const TT* t, int64_t n, const float* dy, float* dp, float* dt,
                                    bool add_p, bool add_t) {
  const float c = 2.0f * dy[0] / static_cast<float>(n);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = c * (load(p, i) - load(t, i));
    if (dp) dp[i] = (add_p ? dp[i] : 0.0f) + g;
    if (dt) dt[i] = (add_t ? dt[i] : 0.0f) - g;
  }
}

// *total += sum over i of (a[i] - b[i])^2 (b null: a[i]^2), on the device, in double.
template <class TA, class TB>
void add_squared_distance(const TA* a, const TB* b, int64_t n, double* total, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  const cudaStream_t s = stream(device);
  // The block count depends on n only, so the summation order is fixed.
  const int blocks = static_cast<int>(std::min<int64_t>(kSquareBlocks, (n + 4095) / 4096));
  const std::shared_ptr<void> partials = allocate(blocks * sizeof(double), device);
  squares_partial_kernel<<<blocks, kThreads, 0, s>>>(a, b, n, static_cast<double*>(partials.get()));
  VDIT_CUDA_CHECK_LAUNCH();
  squares_total_kernel<<<1, kSquareBlocks, 0, s>>>(static_cast<const double*>(partials.get()), blocks, total);
  VDIT_CUDA_CHECK_LAUNCH();
}

// --- the ops ---

Tensor sum_op(const Tensor& x, const std::vector<int>& axes, bool keepdim, bool average) {
  const ReducedShape shapes = reduced_shape(x.shape(), axes, keepdim);
  const Shape kept = shapes.kept;
  const float factor = average ? 1.0f / static_cast<float>(std::max<int64_t>(shapes.count, 1)) : 1.0f;
  const int device = x.device().index;
  Tensor result = Tensor::empty(shapes.out, DType::F32, x.device());
  with_dtype(x.dtype(), [&](auto tag) {
    reduce_typed(out<float>(result), kept, in<VDIT_T(tag)>(x), x.shape(), factor, false, device);
  });
  if (!needs_grad({&x})) return result;
  GradRef go = Tape::output(result), gx = x.grad_ref();
  const Shape in_shape = x.shape();
  Tape::record([go, gx, in_shape, kept, factor, device] {
    const float* dy = arrived(go);
    if (!dy) return;
    bool fresh = false;  // a fresh buffer is written, not zero-filled and added to
    float* dx = gx->buffer_for_write(&fresh);
    broadcast_into(dx, in_shape, dy, kept, factor, !fresh, device);
  });
  return result;
}

Tensor mse_loss_op(const Tensor& prediction, const Tensor& target) {
  const int device = prediction.device().index;
  const int64_t n = prediction.numel();
  Tensor result = Tensor::empty({}, DType::F32, prediction.device());
  {
    DeviceGuard guard(device);
    const std::shared_ptr<void> total = allocate(sizeof(double), device);
    double* pt = static_cast<double*>(total.get());
    VDIT_CUDA_CHECK(cudaMemsetAsync(pt, 0, sizeof(double), stream(device)));
    with_dtype(prediction.dtype(), [&](auto p) {
      with_dtype(target.dtype(), [&](auto t) {
        add_squared_distance(in<VDIT_T(p)>(prediction), in<VDIT_T(t)>(target), n, pt, device);
      });
    });
    mean_of_total_kernel<<<1, 1, 0, stream(device)>>>(pt, n, out<float>(result));
    VDIT_CUDA_CHECK_LAUNCH();
  }
  if (!needs_grad({&prediction, &target})) return result;
  GradRef go = Tape::output(result), gp = prediction.grad_ref(), gt = target.grad_ref();
  Tape::record([go, gp, gt, prediction, target, n, device] {
    const float* dy = arrived(go);
    if (!dy || n == 0) return;
    DeviceGuard guard(device);
    bool fresh_p = false, fresh_t = false;
    float* dp = gp ? gp->buffer_for_write(&fresh_p) : nullptr;
    // Prediction and target one tensor: one buffer, written by dp's line, then added to by dt's.
    float* dt = gt ? gt->buffer_for_write(&fresh_t) : nullptr;
    with_dtype(prediction.dtype(), [&](auto p) {
      with_dtype(target.dtype(), [&](auto t) {
        mse_backward_kernel<<<blocks_for(n), kThreads, 0, stream(device)>>>(
            in<VDIT_T(p)>(prediction), in<VDIT_T(t)>(target), n, dy, dp, dt, !fresh_p, !fresh_t);
      });
    });
    VDIT_CUDA_CHECK_LAUNCH();
  });
  return result;
}

}  // namespace

void reduce_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape, float alpha,
                 bool accumulate, int device) {
  reduce_typed(dst, dst_shape, src, src_shape, alpha, accumulate, device);
}

void broadcast_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape, float alpha,
                    bool accumulate, int device) {
  const int64_t n = numel(dst_shape);
  if (n == 0) return;
  DeviceGuard guard(device);
  const Indexer<2> ix = make_indexer<2>(dst_shape, {contiguous_strides(dst_shape), broadcast_strides(src_shape, dst_shape)});
  broadcast_into_kernel<<<blocks_for(n), kThreads, 0, stream(device)>>>(dst, src, ix, n, alpha, accumulate);
  VDIT_CUDA_CHECK_LAUNCH();
}

void sum_partials(const float* partials, int64_t chunks, int64_t count, float* dst, float alpha, bool accumulate,
                  int device) {
  if (count == 0) return;
  DeviceGuard guard(device);
  VDIT_CHECK((count + 31) / 32 <= 0x7fffffff, "sum_partials over " << count << " outputs: too many blocks");
  sum_partials_kernel<<<static_cast<unsigned>((count + 31) / 32), dim3(32, kGroups), 0, stream(device)>>>(
      partials, chunks, count, dst, alpha, accumulate);
  VDIT_CUDA_CHECK_LAUNCH();
}

void add_sum_of_squares(const float* x, int64_t n, double* total, int device) {
  add_squared_distance(x, static_cast<const float*>(nullptr), n, total, device);
}

void register_reduce(CudaBackend& backend) {
  backend.sum = sum_op;
  backend.mse_loss = mse_loss_op;
}

}  // namespace vdit::cuda
