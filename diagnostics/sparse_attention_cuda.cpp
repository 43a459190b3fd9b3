// sparse_attention for inputs on a CUDA device: q, k, v narrowed to bf16, one run of
// sparse_attention_kernels per sample, the output bf16 (an activation, as the attention op's).
#if VDITKIT_CUDA
#include "autograd/check.h"
#include "autograd/cuda/runtime.h"
#include "autograd/cuda/sparse_attention_kernels.cuh"
#include "diagnostics/diagnostics_cuda.h"

namespace vdit {

Tensor sparse_attention_cuda(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, float scale,
                             const std::vector<float>& temperature, int64_t keep) {
  const Device device = q_in.device();
  VDIT_CHECK(k_in.device() == device && v_in.device() == device,
             "sparse attention: q, k and v must share a device; got " << to_string(device) << ", "
                                                                       << to_string(k_in.device()) << ", " << to_string(v_in.device()));
  const Tensor q = q_in.to_bf16(), k = k_in.to_bf16(), v = v_in.to_bf16();
  const int64_t batch = q.size(0), n_q = q.size(1), n_k = k.size(1), heads = q.size(2), head_dim = q.size(3);
  VDIT_CHECK(n_q < (int64_t{1} << 30) && n_k < (int64_t{1} << 30),
             "sparse attention (CUDA): " << n_q << " queries and " << n_k << " keys exceed the kernels' int range");
  const Tensor tau = temperature.empty() ? Tensor() : Tensor::from_vector({heads}, temperature).to(device);
  cuda::SparseAttentionProblem p;
  p.temperature = tau.defined() ? static_cast<const float*>(tau.storage()) : nullptr;
  p.scale = scale;
  p.q_len = static_cast<int>(n_q), p.k_len = static_cast<int>(n_k), p.heads = static_cast<int>(heads);
  p.head_dim = static_cast<int>(head_dim), p.keep = static_cast<int>(keep);
  const size_t bytes = cuda::sparse_attention_workspace_bytes(p);
  const Tensor workspace =
      Tensor::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, DType::F32, device);
  Tensor out = Tensor::empty(q.shape(), DType::BF16, device);
  const auto* q16 = static_cast<const __nv_bfloat16*>(q.storage());
  const auto* k16 = static_cast<const __nv_bfloat16*>(k.storage());
  const auto* v16 = static_cast<const __nv_bfloat16*>(v.storage());
  auto* out16 = static_cast<__nv_bfloat16*>(out.storage());
  cuda::DeviceGuard guard(device.index);
  for (int64_t b = 0; b < batch; ++b) {
    p.q = q16 + b * n_q * heads * head_dim;
    p.k = k16 + b * n_k * heads * head_dim;
    p.v = v16 + b * n_k * heads * head_dim;
    const std::string error = cuda::sparse_attention(p, out16 + b * n_q * heads * head_dim, workspace.storage(), bytes,
                                                     cuda::stream(device.index));
    VDIT_CHECK(error.empty(), error);
  }
  return out;
}

}  // namespace vdit
#endif
