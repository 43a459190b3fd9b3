#pragma once
// Top-k attention (diagnostics/sparse_attention.h) on a GPU: each query keeps its most probable
// keys, renormalised among themselves, for one sample, streamed over blocks of 64 queries
// (score_pass.cuh) with no [Nq, Nk] map held.
//
// The keep-th largest probability is found as the attention statistics find their order
// statistics (attention_stats_kernels.cuh): a log-sum-exp pass, a coarse histogram of log2 p
// over [log2 max p - 40, log2 max p] in 64 bins, a fine one of 56 bins inside the coarse bin
// where the running count from the top reaches `keep`; then the crossed fine bin's members (up
// to 32) are collected and sorted by probability, then lower key index, as the CPU breaks
// ties. So a query keeps exactly its `keep` most probable keys (by the GPU's own
// probabilities), unless its crossed fine bin has more than 32 members, whose probabilities
// then lie within a factor 2^(40 / (64 * 56)) (0.78%) of each other: that bin gives its first
// members in key order (still exactly `keep` keys; equal probabilities to the lower key, as on
// the CPU). Keys below 2^-40 max p are dropped when `keep` keys lie above them (they hold less
// than Nk 2^-40 of the mass), kept otherwise. Probabilities enter the P V product as bf16, as
// in the dense forward.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

namespace vdit::cuda {

struct SparseAttentionProblem {
  const __nv_bfloat16* q = nullptr;  // [Nq, H, hd], 16-byte aligned
  const __nv_bfloat16* k = nullptr;  // [Nk, H, hd]
  const __nv_bfloat16* v = nullptr;  // [Nk, H, hd]
  const float* temperature = nullptr;  // [H] on the device, or null
  float scale = 0.0f;
  int q_len = 0, k_len = 0, heads = 0, head_dim = 0;
  int keep = 1;  // keys each query keeps, 1..Nk
  int query_stride = 1;  // rows of q between two queries (q_len of them): probed queries
};

size_t sparse_attention_workspace_bytes(const SparseAttentionProblem& problem);

// out [Nq, H, hd] bf16. Enqueued on `stream`; an empty string on success, else a one-line error.
[[nodiscard]] std::string sparse_attention(const SparseAttentionProblem& problem, __nv_bfloat16* out, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream);

// Each query's selection on the device, [H, Nq] per array: its log-sum-exp and largest score
// (log2 units), the crossed coarse bin (-1: every key kept), the count of keys above the crossed
// fine bin, and that fine bin. sparse_attention finds it with passes of its own; the attention
// statistics find it alongside theirs (attention_stats_kernels.cuh: AttentionStatsProblem::keep).
struct TopKSelection {
  float* lse2 = nullptr;
  float* max2 = nullptr;
  int* coarse = nullptr;
  unsigned* count_above = nullptr;
  int* fine = nullptr;
  float* last_log2p = nullptr;  // the crossed fine bin's last kept member (the selection pass)
  int* last_key = nullptr;
};
// The arrays cut from `base` (256-byte aligned; null: only the size), and the bytes they take.
std::pair<TopKSelection, size_t> carve_topk_selection(void* base, int heads, int q_len);
size_t topk_selection_bytes(int heads, int q_len);

// The selection's last pass and the output pass, over a selection found for the same q, k,
// temperature, scale, keep and query stride.
[[nodiscard]] std::string sparse_attention_output(const SparseAttentionProblem& problem, const TopKSelection& selection,
                                                  __nv_bfloat16* out, cudaStream_t stream);

}  // namespace vdit::cuda
