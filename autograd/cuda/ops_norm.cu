// Row-wise ops over the last axis on the device, the twins of autograd/ops_norm.cpp: softmax,
// LayerNorm and RMSNorm (LayerNorm without centring or bias). One block per row; statistics
// in fp32 by fixed-order block sums; mean and rstd saved per row (fp32) for the backward. The
// weight and bias gradients sum over rows in two passes (per-chunk column partials, then the
// chunks in order), so they are bit-identical run to run without atomics.
#include <algorithm>

#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/register.h"
#include "autograd/grad_accumulate.h"

namespace vdit::cuda {

namespace {

// Threads per row block: about four elements each, a whole number of warps, at most 512.
int row_threads(int64_t d) {
  const int64_t t = (d / 4 + 31) / 32 * 32;
  return static_cast<int>(std::clamp<int64_t>(t, 32, 512));
}

// --- softmax ---

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t d) {
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * d;
  T* yr = y + blockIdx.x * d;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) m = fmaxf(m, load(xr, j));
  m = block_reduce<true>(m, scratch);
  float total = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) total += expf(load(xr, j) - m);
  const float inv = 1.0f / block_reduce(total, scratch);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) store(yr, j, expf(load(xr, j) - m) * inv);
}

// dx (+)= y (dy - sum(dy y)) per row.
template <class T>
__global__ void softmax_backward_kernel(const T* y, const float* dy, float* dx, int64_t d, bool accumulate) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * d;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dot += dy[base + j] * load(y, base + j);
  dot = block_reduce(dot, scratch);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float yj = load(y, base + j);
    dx[base + j] = (accumulate ? dx[base + j] : 0.0f) + yj * (dy[base + j] - dot);
  }
}

Tensor softmax_op(const Tensor& x) {
  VDIT_CHECK(x.ndim() >= 1, "softmax of a scalar");
  const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0;
  Tensor result = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int device = x.device().index;
  if (rows > 0) {
    DeviceGuard guard(device);
    with_dtype(x.dtype(), [&](auto t) {
      using T = VDIT_T(t);
      softmax_kernel<<<static_cast<unsigned>(rows), row_threads(d), 0, stream(device)>>>(in<T>(x), out<T>(result), d);
    });
    VDIT_CUDA_CHECK_LAUNCH();
  }
  if (!needs_grad({&x})) return result;
  GradRef go = Tape::output(result), gx = x.grad_ref();
  const Tensor y = result.detach();
  Tape::record([go, gx, y, rows, d, device] {
    const float* dy = arrived(go);
    if (!dy || rows == 0) return;
    DeviceGuard guard(device);
    bool fresh = false;  // a fresh buffer is written, not zero-filled and added to
    float* dx = gx->buffer_for_write(&fresh);
    with_dtype(y.dtype(), [&](auto t) {
      softmax_backward_kernel<<<static_cast<unsigned>(rows), row_threads(d), 0, stream(device)>>>(
          in<VDIT_T(t)>(y), dy, dx, d, !fresh);
    });
    VDIT_CUDA_CHECK_LAUNCH();
  });
  return result;
}

// --- LayerNorm and RMSNorm: y = (x - mu) rstd w + b, mu = 0 when not centred ---

template <bool kCentred, class T, class TW, class TB, class TO>
__global__ void norm_kernel(const T* x, const TW* w, const TB* b, TO* y, float* mean, float* rstd, int64_t d,
                            float eps) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * d;
  float m = 0.0f;
  if constexpr (kCentred) {
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += load(x, base + j);
    m = block_reduce(s, scratch) / static_cast<float>(d);
  }
  float ss = 0.0f;  // two passes: the centred sum of squares, not E[x^2] - mu^2
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float c = load(x, base + j) - m;
    ss += c * c;
  }
  const float rs = 1.0f / sqrtf(block_reduce(ss, scratch) / static_cast<float>(d) + eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = m;
    rstd[blockIdx.x] = rs;
  }
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float v = (load(x, base + j) - m) * rs;
    if (w) v *= load(w, j);
    if (b) v += load(b, j);
    store(y, base + j, v);
  }
}

// dx (+)= rstd (g - mean(g) - xhat mean(g xhat)), g = dy w (mean(g) only when centred).
template <bool kCentred, class T, class TW>
__global__ void norm_backward_kernel(const T* x, const TW* w, const float* dy, const float* mean, const float* rstd,
                                     float* dx, int64_t d, bool accumulate) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * d;
  const float m = mean[blockIdx.x], rs = rstd[blockIdx.x];
  float sum_g = 0.0f, sum_gx = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float g = w ? dy[base + j] * load(w, j) : dy[base + j];
    sum_g += g;
    sum_gx += g * (load(x, base + j) - m) * rs;
  }
  const float mean_g = kCentred ? block_reduce(sum_g, scratch) / static_cast<float>(d) : 0.0f;
  const float mean_gx = block_reduce(sum_gx, scratch) / static_cast<float>(d);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float xhat = (load(x, base + j) - m) * rs;
    const float g = w ? dy[base + j] * load(w, j) : dy[base + j];
    dx[base + j] = (accumulate ? dx[base + j] : 0.0f) + rs * (g - mean_g - xhat * mean_gx);
  }
}

// Column partials of the weight (dy xhat) and bias (dy) gradients over rows chunk blockIdx.y.
template <class T>
__global__ void norm_weight_partial_kernel(const T* x, const float* dy, const float* mean, const float* rstd,
                                           int64_t rows, int64_t d, int64_t chunk, float* partial_w,
                                           float* partial_b) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= d) return;
  const int64_t begin = blockIdx.y * chunk, end = min(rows, begin + chunk);
  float sw = 0.0f, sb = 0.0f;
  for (int64_t r = begin; r < end; ++r) {
    const float g = dy[r * d + j];
    sw += g * (load(x, r * d + j) - mean[r]) * rstd[r];
    sb += g;
  }
  if (partial_w) partial_w[blockIdx.y * d + j] = sw;
  if (partial_b) partial_b[blockIdx.y * d + j] = sb;
}

// An optional operand's typed pointer: null (as fp32) when undefined.
template <class Fn>
void with_optional(const Tensor& t, Fn&& fn) {
  if (!t.defined()) return fn(static_cast<const float*>(nullptr));
  with_dtype(t.dtype(), [&](auto tag) { fn(in<VDIT_T(tag)>(t)); });
}

struct NormSaved {
  Tensor x, w, mean, rstd;
  int64_t rows, d;
  bool centred;
  int device;
};

void norm_backward(const NormSaved& s, const float* dy, const GradRef& gx, const GradRef& gw, const GradRef& gb) {
  DeviceGuard guard(s.device);
  const cudaStream_t st = stream(s.device);
  const float* mean = in<float>(s.mean);
  const float* rstd = in<float>(s.rstd);
  with_dtype(s.x.dtype(), [&](auto tx) {
    using T = VDIT_T(tx);
    // Fresh gradient buffers are written, not zero-filled and added to.
    bool fresh = false;
    if (gx)
      with_optional(s.w, [&](auto w) {
        float* dx = gx->buffer_for_write(&fresh);
        if (s.centred)
          norm_backward_kernel<true><<<static_cast<unsigned>(s.rows), row_threads(s.d), 0, st>>>(
              in<T>(s.x), w, dy, mean, rstd, dx, s.d, !fresh);
        else
          norm_backward_kernel<false><<<static_cast<unsigned>(s.rows), row_threads(s.d), 0, st>>>(
              in<T>(s.x), w, dy, mean, rstd, dx, s.d, !fresh);
        VDIT_CUDA_CHECK_LAUNCH();
      });
    if (!gw && !gb) return;
    // Chunks of rows depend on the shape only, so the column sums' order is fixed.
    const int64_t chunk = std::max<int64_t>(64, (s.rows + 65534) / 65535);
    const int64_t chunks = (s.rows + chunk - 1) / chunk;
    const Device dev = Device::cuda(s.device);
    const Tensor pw = gw ? Tensor::empty({chunks * s.d}, DType::F32, dev) : Tensor();
    const Tensor pb = gb ? Tensor::empty({chunks * s.d}, DType::F32, dev) : Tensor();
    const dim3 grid(static_cast<unsigned>((s.d + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
    norm_weight_partial_kernel<<<grid, kThreads, 0, st>>>(in<T>(s.x), dy, mean, rstd, s.rows, s.d, chunk,
                                                         gw ? out<float>(pw) : nullptr, gb ? out<float>(pb) : nullptr);
    VDIT_CUDA_CHECK_LAUNCH();
    for (const auto& [slot, partials] : {std::pair{gw, pw}, std::pair{gb, pb}}) {
      if (!slot) continue;
      float* dst = slot->buffer_for_write(&fresh);
      sum_partials(in<float>(partials), chunks, s.d, dst, 1.0f, !fresh, s.device);
    }
  });
}

Tensor normalize_rows(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, bool centred) {
  const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0;
  VDIT_CHECK(!weight.defined() || weight.shape() == Shape{d},
             "norm weight " << to_string(weight.shape()) << " does not match width " << d);
  VDIT_CHECK(!bias.defined() || bias.shape() == Shape{d},
             "norm bias " << to_string(bias.shape()) << " does not match width " << d);
  const int device = x.device().index;
  const Device dev = x.device();
  Tensor result = Tensor::empty(x.shape(), output_dtype({&x, &weight, &bias}), dev);
  Tensor mean = Tensor::empty({rows}, DType::F32, dev), rstd = Tensor::empty({rows}, DType::F32, dev);
  if (rows > 0) {
    DeviceGuard guard(device);
    const unsigned blocks = static_cast<unsigned>(rows);
    const int threads = row_threads(d);
    with_dtype(x.dtype(), [&](auto tx) {
      with_optional(weight, [&](auto w) {
        with_optional(bias, [&](auto b) {
          with_dtype(result.dtype(), [&](auto to) {
            using TO = VDIT_T(to);
            if (centred)
              norm_kernel<true><<<blocks, threads, 0, stream(device)>>>(in<VDIT_T(tx)>(x), w, b, out<TO>(result),
                                                                        out<float>(mean), out<float>(rstd), d, eps);
            else
              norm_kernel<false><<<blocks, threads, 0, stream(device)>>>(in<VDIT_T(tx)>(x), w, b, out<TO>(result),
                                                                         out<float>(mean), out<float>(rstd), d, eps);
          });
        });
      });
    });
    VDIT_CUDA_CHECK_LAUNCH();
  }
  if (!needs_grad({&x, &weight, &bias})) return result;
  GradRef go = Tape::output(result), gx = x.grad_ref();
  GradRef gw = weight.defined() ? weight.grad_ref() : nullptr;
  GradRef gb = bias.defined() ? bias.grad_ref() : nullptr;
  const NormSaved saved{x.detach(), weight.defined() ? weight.detach() : Tensor(), mean, rstd, rows, d, centred,
                        device};
  Tape::record([go, gx, gw, gb, saved] {
    const float* dy = arrived(go);
    if (dy && saved.rows > 0) norm_backward(saved, dy, gx, gw, gb);
  });
  return result;
}

Tensor layer_norm_op(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  return normalize_rows(x, weight, bias, eps, true);
}

Tensor rms_norm_op(const Tensor& x, const Tensor& weight, float eps) {
  return normalize_rows(x, weight, Tensor(), eps, false);
}

}  // namespace

void register_norm(CudaBackend& backend) {
  backend.softmax = softmax_op;
  backend.layer_norm = layer_norm_op;
  backend.rms_norm = rms_norm_op;
}

}  // namespace vdit::cuda
