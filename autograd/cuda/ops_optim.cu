// Optimizer updates and gradient clipping on the device: AdamW and SGD with the exact operation
// order of optim/adamw.cpp and optim/sgd.cpp (explicit round-to-nearest intrinsics, so nvcc
// fuses nothing the CPU code does not fuse: the updates match the CPU ones), the global
// gradient norm's sum of squares (double, fixed order) and the in-place scaling that clips.
#include <vector>

#include "autograd/cuda/allocator.h"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/register.h"

namespace vdit::cuda {

namespace {

// p = p decay; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
// p += neg_step m / (sqrt(v) / bias_correction2_sqrt + eps), each rounding where the CPU's is.
__global__ void adamw_kernel(float* value, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             AdamWScalars s) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < n; j += int64_t{gridDim.x} * blockDim.x) {
    const float g = grad[j];
    const float decayed = __fmul_rn(value[j], s.decay);
    const float m = __fmaf_rn(g, s.one_minus_beta1, __fmul_rn(exp_avg[j], s.beta1));
    const float v = __fmaf_rn(__fmul_rn(s.one_minus_beta2, g), g, __fmul_rn(exp_avg_sq[j], s.beta2));
    exp_avg[j] = m;
    exp_avg_sq[j] = v;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias_correction2_sqrt), s.eps);
    value[j] = __fadd_rn(__fdiv_rn(__fmul_rn(s.neg_step_size, m), denom), decayed);
  }
}

// d = g + decay p; b = momentum b + d; p += neg_lr (nesterov ? d + momentum b : b).
__global__ void sgd_kernel(float* value, const float* grad, float* buffer, int64_t n, SgdScalars s) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < n; j += int64_t{gridDim.x} * blockDim.x) {
    float d = __fmaf_rn(value[j], s.decay, grad[j]);
    if (buffer) {
      const float b = __fadd_rn(d, __fmul_rn(buffer[j], s.momentum));
      buffer[j] = b;
      d = s.nesterov ? __fmaf_rn(b, s.momentum, d) : b;
    }
    value[j] = __fmaf_rn(d, s.neg_lr, value[j]);
  }
}

__global__ void scale_kernel(float* data, int64_t n, float factor) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < n; j += int64_t{gridDim.x} * blockDim.x)
    data[j] *= factor;
}

void adamw_update(float* value, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWScalars& scalars, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  adamw_kernel<<<blocks_for(n), kThreads, 0, stream(device)>>>(value, grad, exp_avg, exp_avg_sq, n, scalars);
  VDIT_CUDA_CHECK_LAUNCH();
}

void sgd_update(float* value, const float* grad, float* momentum, int64_t n, const SgdScalars& scalars, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  sgd_kernel<<<blocks_for(n), kThreads, 0, stream(device)>>>(value, grad, momentum, n, scalars);
  VDIT_CUDA_CHECK_LAUNCH();
}

double sum_of_squares(const std::vector<const float*>& buffers, const std::vector<int64_t>& sizes, int device) {
  VDIT_CHECK(buffers.size() == sizes.size(), "sum_of_squares: " << buffers.size() << " buffers, " << sizes.size()
                                                                << " sizes");
  DeviceGuard guard(device);
  const std::shared_ptr<void> total = allocate(sizeof(double), device);
  VDIT_CUDA_CHECK(cudaMemsetAsync(total.get(), 0, sizeof(double), stream(device)));
  for (size_t i = 0; i < buffers.size(); ++i)
    add_sum_of_squares(buffers[i], sizes[i], static_cast<double*>(total.get()), device);
  double host = 0.0;
  VDIT_CUDA_CHECK(cudaMemcpyAsync(&host, total.get(), sizeof(double), cudaMemcpyDeviceToHost, stream(device)));
  VDIT_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
  return host;
}

void scale_in_place(float* data, int64_t n, float factor, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  scale_kernel<<<blocks_for(n), kThreads, 0, stream(device)>>>(data, n, factor);
  VDIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void register_optim(CudaBackend& backend) {
  backend.adamw_update = adamw_update;
  backend.sgd_update = sgd_update;
  backend.sum_of_squares = sum_of_squares;
  backend.scale_in_place = scale_in_place;
}

}  // namespace vdit::cuda
