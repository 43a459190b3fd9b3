// The attention op on CUDA: the twin of autograd/attention.cpp over the fused kernels of
// attention_kernels.cuh. q, k, v enter as bf16 (fp32 ones are narrowed); the output is bf16
// unless every input was fp32 (the precision rule), the log-sum-exp fp32. The backward closure
// keeps the bf16 q, k, v, the bf16 output and the log-sum-exp, and adds fp32 gradients into the
// inputs' buffers (and the temperature's).
#include "autograd/cuda/attention_kernels.cuh"
#include "autograd/cuda/register.h"
#include "autograd/cuda/runtime.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"

namespace vdit::cuda {

namespace {

const __nv_bfloat16* bf16(const Tensor& t) { return static_cast<const __nv_bfloat16*>(t.storage()); }
const float* f32(const Tensor& t) { return t.defined() ? static_cast<const float*>(t.storage()) : nullptr; }
float* grad_buffer(const GradRef& slot) { return slot ? slot->buffer() : nullptr; }

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

  const Tensor out16 = Tensor::empty(q.shape(), DType::BF16, q.device());
  const Tensor lse = Tensor::empty({shape.batch, shape.heads, shape.q_len}, DType::F32, q.device());
  {
    DeviceGuard guard(device);
    const std::string error = attention_forward(in, static_cast<__nv_bfloat16*>(out16.storage()),
                                                static_cast<float*>(lse.storage()), stream(device));
    VDIT_CHECK(error.empty(), "attention on cuda:" << device << ": " << error);
  }
  const bool all_f32 = q_in.dtype() == DType::F32 && k_in.dtype() == DType::F32 && v_in.dtype() == DType::F32;
  Tensor out = all_f32 ? out16.to_f32() : out16.detach();
  if (!needs_grad({&q_in, &k_in, &v_in, &tau_in})) return out;

  GradRef go = Tape::output(out), gq = q_in.grad_ref(), gk = k_in.grad_ref(), gv = v_in.grad_ref();
  GradRef gt = tau.defined() ? tau_in.grad_ref() : nullptr;
  // `in` points into q, k, v, tau and mask: the closure keeps them alive with out16 and lse.
  Tape::record([go, gq, gk, gv, gt, in, shape, device, q, k, v, tau, mask, out16, lse] {
    const float* dout = arrived(go);
    if (!dout) return;
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
