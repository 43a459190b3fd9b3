#pragma once
// cuDNN's fused flash attention (SDPA) for the plain case of the attention op: q, k, v bf16 in
// our layout [B, N, H, hd], no key mask, no temperature. It builds cuDNN operation graphs through
// the backend API (no cudnn-frontend), caches execution plans per device, shape, scale, direction
// and group of heads, and runs them on cuda::stream(device) with workspace from our allocator.
//
// The conventions match attention_kernels.cuh, so a cuDNN forward can feed our backward: out
// [B, Nq, H, hd] bf16, lse [B, H, Nq] the natural-log log-sum-exp of each query's scaled logits
// (cuDNN's softmax "Stats"). Gradients come out in bf16 (cuDNN writes its I/O type); the op adds
// them into the fp32 gradient buffers.
//
// Only deterministic engines are used (engines noted CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC are
// skipped, and the backward graph asks for the variant without fp32 dQ atomics), so a step stays
// bit-identical run to run.
//
// Each function returns false, with the reason in *why (the failing cuDNN call, its status and
// cuDNN's last error message), when no plan can be built for the case: cuDNN has no
// (deterministic) engine for the shape, rejects the graph, even one head's launch would need more
// workspace than VDITKIT_CUDNN_WORKSPACE_MIB allows, or the build has no cuDNN; the caller
// then runs our kernel or, when cuDNN was demanded, reports why. Running a built plan that fails
// throws vdit::Error naming the call.
#include <string>

#include "autograd/cuda/attention_kernels.cuh"

namespace vdit::cuda {

// Whether this build links cuDNN (VDITKIT_HAVE_CUDNN).
bool cudnn_attention_built();

// out = softmax(q k^T * scale) v and its lse; scale 0 means 1 / sqrt(head_dim).
bool cudnn_attention_forward(const AttentionShape& shape, float scale, const __nv_bfloat16* q,
                             const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out, float* lse,
                             int device, std::string* why);

// How the op runs a shape on cuDNN, for reports: each launch takes `batch_per_launch` items and
// `heads_per_launch` heads (groups keep one launch's workspace under VDITKIT_CUDNN_WORKSPACE_MIB,
// default 4096: the deterministic backward's workspace is quadratic in tokens), with that
// workspace; or why cuDNN cannot run it.
struct CudnnAttentionPlan {
  bool available = false;
  int64_t batch_per_launch = 0, heads_per_launch = 0, workspace_bytes = 0;
  int nondeterministic_skipped = 0;  // engines the heuristics ranked first but noted nondeterministic
  std::string why;
};
CudnnAttentionPlan cudnn_attention_plan(const AttentionShape& shape, float scale, bool backward, int device);

// dq, dk, dv (overwritten, bf16) from the forward's out and lse and the bf16 gradient dout.
struct CudnnAttentionBackward {
  const __nv_bfloat16 *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr, *dout = nullptr;
  const float* lse = nullptr;
  __nv_bfloat16 *dq = nullptr, *dk = nullptr, *dv = nullptr;
};
bool cudnn_attention_backward(const AttentionShape& shape, float scale, const CudnnAttentionBackward& io,
                              int device, std::string* why);

}  // namespace vdit::cuda
