// The attention op on CUDA: the twin of autograd/attention.cpp over the fused kernels of
// attention_kernels.cuh. q, k, v enter as bf16 (fp32 ones are narrowed); the output is bf16
// unless every input was fp32 (the precision rule), the log-sum-exp fp32. The backward closure
// keeps the bf16 q, k, v, the bf16 output and the log-sum-exp, and adds fp32 gradients into the
// inputs' buffers (and the temperature's).
//
// Which kernel: VDITKIT_CUDA_ATTENTION=auto (the default) runs cuDNN's fused attention for the
// plain case (no temperature, no key mask) where the build has cuDNN and cuDNN can run the shape,
// and our kernel otherwise; `own` always runs ours; `cudnn` runs cuDNN or fails saying why not.
// Where cuDNN runs the forward but has no deterministic backward for the shape, our backward
// takes its output and lse (the same natural-log convention): its forward is the faster one.
#include <cstdlib>

#include "autograd/cuda/attention_cudnn.h"
#include "autograd/cuda/attention_kernels.cuh"
#include "autograd/cuda/memory_kernels.h"
#include "autograd/cuda/register.h"
#include "autograd/cuda/runtime.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"

namespace vdit::cuda {

namespace {

const __nv_bfloat16* bf16(const Tensor& t) { return static_cast<const __nv_bfloat16*>(t.storage()); }
const float* f32(const Tensor& t) { return t.defined() ? static_cast<const float*>(t.storage()) : nullptr; }
float* grad_buffer(const GradRef& slot) { return slot ? slot->buffer() : nullptr; }

enum class Kernel { automatic, own, cudnn };

Kernel kernel_choice() {
  const char* env = std::getenv("VDITKIT_CUDA_ATTENTION");
  const std::string value = env ? env : "";
  if (value.empty() || value == "auto") return Kernel::automatic;
  if (value == "own") return Kernel::own;
  VDIT_CHECK(value == "cudnn", "VDITKIT_CUDA_ATTENTION=" << value << ": expected auto, own or cudnn");
  return Kernel::cudnn;
}

// Adds a bf16 gradient into an fp32 gradient buffer (overwrites it when it is fresh).
void add_bf16_into(const GradRef& slot, const Tensor& grad16, int device) {
  if (!slot) return;
  bool fresh = false;
  float* buffer = slot->buffer_for_write(&fresh);
  if (fresh) {
    convert(grad16.storage(), DType::BF16, buffer, DType::F32, grad16.numel(), device);
  } else {
    const Tensor grad = grad16.to_f32();
    accumulate(buffer, f32(grad), grad.numel(), 1.0f, device);
  }
}

// cuDNN's backward: dout narrowed to bf16 for it, its bf16 gradients added into the fp32 buffers.
// False, with the reason, where cuDNN has no deterministic backward for the shape.
bool cudnn_backward(const AttentionInputs& in, const Tensor& q, const Tensor& k, const Tensor& out16,
                    const Tensor& lse, const float* dout, const GradRef& gq, const GradRef& gk, const GradRef& gv,
                    int device, std::string* why) {
  const Device on = Device::cuda(device);
  const Tensor dout16 = Tensor::empty(q.shape(), DType::BF16, on);
  convert(dout, DType::F32, dout16.storage(), DType::BF16, q.numel(), device);
  const Tensor dq = Tensor::empty(q.shape(), DType::BF16, on), dk = Tensor::empty(k.shape(), DType::BF16, on),
               dv = Tensor::empty(k.shape(), DType::BF16, on);
  auto bf16_out = [](const Tensor& t) { return static_cast<__nv_bfloat16*>(t.storage()); };
  const CudnnAttentionBackward io{in.q, in.k, in.v, bf16(out16), bf16(dout16), f32(lse),
                                  bf16_out(dq), bf16_out(dk), bf16_out(dv)};
  if (!cudnn_attention_backward(in.shape, in.scale, io, device, why)) return false;
  add_bf16_into(gq, dq, device);
  add_bf16_into(gk, dk, device);
  add_bf16_into(gv, dv, device);
  return true;
}

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& options) {
  const int device = q_in.device().index;
  const AttentionShape shape{q_in.size(0), q_in.size(1), k_in.size(1), q_in.size(2), q_in.size(3)};
  const Tensor q = q_in.to_bf16(), k = k_in.to_bf16(), v = v_in.to_bf16();
  const Tensor& tau_in = options.temperature;
  const Tensor tau = tau_in.defined() ? tau_in.to_f32() : Tensor();
  const Tensor mask = options.key_mask.defined() ? options.key_mask.to_f32() : Tensor();
  AttentionInputs in;
  in.shape = shape;
  in.q = bf16(q), in.k = bf16(k), in.v = bf16(v);
  in.temperature = f32(tau);
  in.key_mask = f32(mask);
  in.mask_type = mask.defined() ? KeyMaskType::f32 : KeyMaskType::none;
  in.scale = options.scale;

  const Kernel kernel = kernel_choice();
  const char* beyond_plain = tau.defined() ? "a temperature" : mask.defined() ? "a key mask" : nullptr;
  VDIT_CHECK(kernel != Kernel::cudnn || !beyond_plain,
             "attention on cuda:" << device << ": VDITKIT_CUDA_ATTENTION=cudnn, but cuDNN serves only plain "
                                  << "attention and this call has " << beyond_plain << " (use auto or own)");
  const Tensor out16 = Tensor::empty(q.shape(), DType::BF16, q.device());
  const Tensor lse = Tensor::empty({shape.batch, shape.heads, shape.q_len}, DType::F32, q.device());
  bool by_cudnn = false;
  {
    DeviceGuard guard(device);
    auto* out_ptr = static_cast<__nv_bfloat16*>(out16.storage());
    auto* lse_ptr = static_cast<float*>(lse.storage());
    if (kernel != Kernel::own && !beyond_plain) {
      std::string why;
      by_cudnn = cudnn_attention_forward(shape, in.scale, in.q, in.k, in.v, out_ptr, lse_ptr, device, &why);
      VDIT_CHECK(by_cudnn || kernel != Kernel::cudnn,
                 "attention on cuda:" << device << ": VDITKIT_CUDA_ATTENTION=cudnn: " << why);
    }
    if (!by_cudnn) {
      const std::string error = attention_forward(in, out_ptr, lse_ptr, stream(device));
      VDIT_CHECK(error.empty(), "attention on cuda:" << device << ": " << error);
    }
  }
  const bool all_f32 = q_in.dtype() == DType::F32 && k_in.dtype() == DType::F32 && v_in.dtype() == DType::F32;
  Tensor out = all_f32 ? out16.to_f32() : out16.detach();
  if (!needs_grad({&q_in, &k_in, &v_in, &tau_in})) return out;

  GradRef go = Tape::output(out), gq = q_in.grad_ref(), gk = k_in.grad_ref(), gv = v_in.grad_ref();
  GradRef gt = tau.defined() ? tau_in.grad_ref() : nullptr;
  // `in` points into q, k, v, tau and mask: the closure keeps them alive with out16 and lse.
  Tape::record([go, gq, gk, gv, gt, in, shape, device, q, k, v, tau, mask, out16, lse, by_cudnn, kernel] {
    const float* dout = arrived(go);
    if (!dout) return;
    if (by_cudnn) {
      std::string why;
      if (cudnn_backward(in, q, k, out16, lse, dout, gq, gk, gv, device, &why)) return;
      VDIT_CHECK(kernel != Kernel::cudnn,
                 "attention backward on cuda:" << device << ": VDITKIT_CUDA_ATTENTION=cudnn: " << why);
    }
    const size_t bytes = attention_backward_workspace_bytes(shape);
    const Tensor workspace =
        Tensor::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, DType::F32,
                      Device::cuda(device));
    const AttentionGrads grads{grad_buffer(gq), grad_buffer(gk), grad_buffer(gv), grad_buffer(gt)};
    DeviceGuard guard(device);
    const std::string error = attention_backward(in, bf16(out16), f32(lse), dout, grads, workspace.storage(),
                                                 bytes, stream(device));
    VDIT_CHECK(error.empty(), "attention backward on cuda:" << device << ": " << error);
  });
  return out;
}

}  // namespace

void register_attention(CudaBackend& b) { b.attention = attention; }

}  // namespace vdit::cuda
