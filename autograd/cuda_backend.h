#pragma once
// The CUDA backend as seen from the device-agnostic code: a table of entry points that the
// CUDA build fills in (autograd/cuda/register.cpp) and a CPU-only build leaves empty.
//
// Every op in ops.h checks its inputs' device first (`on_cuda`): inputs on different devices
// are an error naming the op and both devices; CUDA inputs go to the op's entry here, and an
// op whose entry is empty is an error naming it. Nothing is ever copied through the host
// behind the caller's back: copies between devices are Tensor::to.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "autograd/device.h"
#include "autograd/ops.h"
#include "autograd/tensor.h"

namespace vdit {

// The caching allocator's account of one device, in bytes.
struct DeviceMemoryStats {
  int64_t live = 0;            // held by tensors now
  int64_t peak = 0;            // most held at once since the last reset
  int64_t cached = 0;          // freed by tensors, kept for reuse
  int64_t device_allocations = 0;  // cudaMalloc calls so far (constant in a steady state)
};

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };
enum class UnaryOp : uint8_t { Square, Exp, Log, Tanh, Silu, GeluTanh };

// The fp32 scalars of one AdamW / SGD update of one parameter, rounded where optim/adamw.cpp
// and optim/sgd.cpp round them, so the CUDA update matches the CPU one.
struct AdamWScalars {
  float decay, beta1, beta2, one_minus_beta1, one_minus_beta2, bias_correction2_sqrt, neg_step_size, eps;
};
struct SgdScalars {
  float decay, momentum, neg_lr;
  bool nesterov;
};

struct CudaBackend {
  // --- runtime: autograd/cuda/runtime.cpp and allocator.cpp ---
  int (*device_count)() = nullptr;
  // Storage of at least `bytes` on `device`, from the caching allocator; freed back to it.
  std::shared_ptr<void> (*allocate)(size_t bytes, int device) = nullptr;
  // Copies between host and device or device and device; returns once `dst` may be read from
  // the host when it is host memory (device-to-device copies are ordered on the stream).
  void (*copy)(void* dst, Device dst_device, const void* src, Device src_device,
               size_t bytes) = nullptr;
  void (*fill)(void* data, DType dtype, int64_t n, float value, int device) = nullptr;
  void (*convert)(const void* src, DType from, void* dst, DType to, int64_t n,
                  int device) = nullptr;
  // dst[i] += alpha * src[i] over float32 buffers (gradient accumulation).
  void (*accumulate)(float* dst, const float* src, int64_t n, float alpha, int device) = nullptr;
  DeviceMemoryStats (*memory_stats)(int device) = nullptr;
  void (*reset_memory_peak)(int device) = nullptr;
  void (*synchronize)(int device) = nullptr;

  // --- ops: the same contracts as ops.h; see the README's precision table ---
  Tensor (*linear)(const Tensor& x, const Tensor& weight, const Tensor& bias) = nullptr;
  Tensor (*matmul)(const Tensor& a, const Tensor& b) = nullptr;
  Tensor (*binary)(BinaryOp op, const Tensor& a, const Tensor& b) = nullptr;
  Tensor (*unary)(UnaryOp op, const Tensor& x) = nullptr;
  Tensor (*affine)(const Tensor& x, float factor, float offset) = nullptr;
  Tensor (*permute)(const Tensor& x, const std::vector<int>& axes) = nullptr;
  Tensor (*slice)(const Tensor& x, int axis, int64_t begin, int64_t end) = nullptr;
  Tensor (*concat)(const std::vector<Tensor>& parts, int axis) = nullptr;
  Tensor (*sum)(const Tensor& x, const std::vector<int>& axes, bool keepdim,
                bool average) = nullptr;
  Tensor (*mse_loss)(const Tensor& prediction, const Tensor& target) = nullptr;
  Tensor (*softmax)(const Tensor& x) = nullptr;
  Tensor (*layer_norm)(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       float eps) = nullptr;
  Tensor (*rms_norm)(const Tensor& x, const Tensor& weight, float eps) = nullptr;
  Tensor (*rope)(const Tensor& x, const Tensor& cos, const Tensor& sin) = nullptr;
  Tensor (*attention)(const Tensor& q, const Tensor& k, const Tensor& v,
                      const AttentionOptions& options) = nullptr;

  // --- optimizer and clipping (autograd/cuda/ops_optim.cu), called by optim/ for parameters
  // on a CUDA device; every buffer is fp32 on `device` and updated in place ---
  void (*adamw_update)(float* value, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                       const AdamWScalars& scalars, int device) = nullptr;
  // `momentum` null: SGD without a momentum buffer.
  void (*sgd_update)(float* value, const float* grad, float* momentum, int64_t n, const SgdScalars& scalars,
                     int device) = nullptr;
  // The sum of squares of every buffer, accumulated on the device in double in a fixed order
  // (buffers in the order given), read back to the host once.
  double (*sum_of_squares)(const std::vector<const float*>& buffers, const std::vector<int64_t>& sizes,
                           int device) = nullptr;
  void (*scale_in_place)(float* data, int64_t n, float factor, int device) = nullptr;
};

// The filled table; an error saying how to build with CUDA when this build has none.
const CudaBackend& cuda_backend();
// Built with CUDA and at least one device visible (GPU tests skip otherwise).
bool cuda_available();

// True when the op's defined inputs live on a CUDA device, false when on the CPU; an error
// naming the op and both devices when they differ.
bool on_cuda(const char* op, std::initializer_list<const Tensor*> inputs);

// The backend's entry for `op`, or an error naming the op when it has no CUDA kernel.
template <class Fn>
Fn cuda_op(Fn CudaBackend::*entry, const char* op);

}  // namespace vdit

#include "autograd/cuda_backend_inl.h"
