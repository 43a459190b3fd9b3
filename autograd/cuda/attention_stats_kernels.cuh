#pragma once
// The attention statistics of diagnostics/attention_stats.h on a GPU, as sums over queries per
// head that diagnostics/attention_stats_cuda.cpp finishes exactly as the CPU path does. Streamed
// over blocks of 64 queries (score_pass.cuh); no [Nq, Nk] map is ever held.
//
// Passes per call: (1) each query's log-sum-exp and largest score; (2) per query: entropy, the
// best key's share, mass by frame distance and by ring in its own frame, mass per key group
// (the pooled map), a coarse histogram of log2 p, and per key the mass summed over the block's
// queries; (3) a fine histogram inside the coarse bins where the running mass from the top
// crosses 90% and 95%; (4) the sums over queries in double, in a fixed order. Deterministic:
// integer atomics only, every float sum in a fixed order.
//
// Keys holding 90% (95%): the coarse window is [log2 max p - 40, log2 max p] in kCoarseBins (64,
// score_pass.cuh) bins (keys below it hold less than Nk 2^-40 of the mass, so both crossings
// lie inside); each crossed bin is cut into kFineBins (56). Inside the crossed fine bin, whose
// probabilities lie within a factor r = 2^w of each other (w = 40 / (64 * 56) its width in log2
// units), the count is interpolated as ceil(needed mass / the bin's mean probability). The exact
// count k and the estimate differ by at most (r - 1) k + 1 keys: r - 1 = 0.78%. The window is
// the top-k selection's (topk_selection.cuh), so that with `keep` the same passes also find
// each query's top-keep keys for sparse_attention_output: diagnose then runs four passes over
// the scores per self-attention, not seven. Probabilities enter the histograms in units of
// 2^-31 (rounded), which moves a row's running mass by at most Nk 2^-32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "autograd/cuda/sparse_attention_kernels.cuh"

namespace vdit::cuda {

struct AttentionStatsProblem {
  const __nv_bfloat16* q = nullptr;  // [Nq, H, hd], 16-byte aligned
  const __nv_bfloat16* k = nullptr;  // [Nk, H, hd]
  const float* temperature = nullptr;  // [H] on the device, or null
  float scale = 0.0f;                  // logits are q.k * scale / temperature[h]
  int q_len = 0, k_len = 0, heads = 0, head_dim = 0;
  int frames = 0, height = 0, width = 0;  // self-attention's token grid; frames 0: cross-attention
  int query_groups = 1, key_groups = 1;   // of the pooled map
  float sink_threshold = 0.5f;
  int keep = 0;  // > 0: also each query's top-keep selection (sparse_attention_kernels.cuh), 1..Nk
  int query_stride = 1;  // rows of q between two queries (q_len of them): probed queries
};

// The sums per head, `per_head()` doubles each: for the `totals` columns (entropy in nats, best
// key over the threshold (0/1), keys for 90%, keys for 95%, then mass per frame distance, then
// per ring) the sum over queries and the sum of squares, interleaved; then the pooled map's
// cells (sum of p over the cell, row-major).
struct AttentionStatsLayout {
  int frame_bins = 0, ring_bins = 0, totals = 0, pooled = 0;
  int per_head() const { return 2 * totals + pooled; }
};
AttentionStatsLayout attention_stats_layout(const AttentionStatsProblem& problem);

size_t attention_stats_workspace_bytes(const AttentionStatsProblem& problem);

// sums [H][layout.per_head()] doubles; key_mass [H][Nk]: each key's mass summed over queries,
// in units of 2^-32. `workspace`: attention_stats_workspace_bytes, 256-byte aligned. With
// problem.keep > 0 the selection's arrays (carve_topk_selection) are filled, the rows'
// log-sum-exp and largest score included. Enqueued on `stream`, no synchronisation; an empty
// string on success, else a one-line error.
[[nodiscard]] std::string attention_stats(const AttentionStatsProblem& problem, double* sums,
                                          unsigned long long* key_mass, void* workspace, size_t workspace_bytes,
                                          cudaStream_t stream, const TopKSelection* selection = nullptr);

}  // namespace vdit::cuda
