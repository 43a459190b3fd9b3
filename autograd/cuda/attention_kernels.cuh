#pragma once
// The fused streaming attention on NVIDIA tensor cores: the CUDA twin of autograd/attention.cpp,
// with the same math and conventions (see its header comment), over raw device pointers.
//
// Precision: q, k, v, out in bf16; scores, softmax statistics and every accumulation in fp32;
// P (forward, and for dV) and dS (for dQ, dK) are rounded to bf16 to enter the tensor cores, as
// in FlashAttention 2. Gradients (dout in, dq/dk/dv/dtemperature out) are fp32.
//
// Layout: q [B, Nq, H, hd], k and v [B, Nk, H, hd], contiguous (tokens H * hd apart), 16-byte
// aligned; hd 64 or 128. lse [B, H, Nq]: natural-log log-sum-exp of each query's scaled logits,
// -inf for a query whose keys are all masked (its output row is 0 and it passes no gradient).
//
// Every function enqueues on `stream` and returns at once: no allocation, no synchronisation.
// Errors (unsupported shapes, missing pointers, a failed launch) come back as a one-line message;
// an empty string means success.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace vdit::cuda {

enum class KeyMaskType { none, f32, u8 };  // [B, Nk]; a key whose entry is 0 gets no mass

struct AttentionShape {
  int64_t batch = 0, q_len = 0, k_len = 0, heads = 0, head_dim = 0;
};

struct AttentionInputs {
  AttentionShape shape;
  const __nv_bfloat16* q = nullptr;
  const __nv_bfloat16* k = nullptr;
  const __nv_bfloat16* v = nullptr;
  const float* temperature = nullptr;  // [H] or null; logits scaled by scale / temperature[h]
  const void* key_mask = nullptr;      // [B, Nk] of mask_type, or null
  KeyMaskType mask_type = KeyMaskType::none;
  float scale = 0.0f;                  // 0 means 1 / sqrt(head_dim)
};

// out [B, Nq, H, hd] = softmax(q k^T * c) v, lse [B, H, Nq].
[[nodiscard]] std::string attention_forward(const AttentionInputs& in, __nv_bfloat16* out, float* lse,
                                            cudaStream_t stream);

// Gradients accumulate INTO the buffers (+=); a null pointer means that gradient is not wanted.
// dtemperature[h] += -(1 / temperature[h]) sum_ij ds_ij s_ij needs in.temperature.
struct AttentionGrads {
  float* dq = nullptr;            // [B, Nq, H, hd]
  float* dk = nullptr;            // [B, Nk, H, hd]
  float* dv = nullptr;            // [B, Nk, H, hd]
  float* dtemperature = nullptr;  // [H]
};

// Device scratch the backward needs (dout in bf16, per-query statistics, temperature partials).
size_t attention_backward_workspace_bytes(const AttentionShape& shape);

// Backward from the forward's out and lse and the fp32 gradient dout [B, Nq, H, hd] (16-byte
// aligned). `workspace` holds attention_backward_workspace_bytes(shape) bytes, 256-byte aligned.
// Deterministic: the same inputs give the same bits (no floating-point atomics).
[[nodiscard]] std::string attention_backward(const AttentionInputs& in, const __nv_bfloat16* out,
                                             const float* lse, const float* dout,
                                             const AttentionGrads& grads, void* workspace,
                                             size_t workspace_bytes, cudaStream_t stream);

// Throughput of attention_forward and forward + backward on random inputs of one shape
// (self-attention, Nq = Nk = tokens), timed with CUDA events. FLOPs counted as FlashAttention
// and PyTorch's benchmarks count them: forward 4 B H N^2 hd, backward 2.5 times that.
struct AttentionTiming {
  double forward_ms = 0, forward_tflops = 0;
  double forward_backward_ms = 0, forward_backward_tflops = 0;
  std::string error;  // non-empty when it could not run
};
AttentionTiming attention_benchmark(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                                    int repeats = 10);

}  // namespace vdit::cuda
