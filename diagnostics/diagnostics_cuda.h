#pragma once
// The GPU twins of attention_statistics and sparse_attention, which dispatch to them when their
// inputs are on a CUDA device (after their own input checks): attention_stats_cuda.cpp and
// sparse_attention_cuda.cpp over autograd/cuda's attention_stats_kernels and
// sparse_attention_kernels. Only in a CUDA build.
#if VDITKIT_CUDA
#include <vector>

#include "diagnostics/attention_stats.h"

namespace vdit {

// On a GPU the statistics (and diagnose's sparsified self-attention) of a call with more than
// kProbedQueries queries are those of every s-th query, s = probe_stride(Nq) = ceil(Nq / 4096):
// each probed query's figures are exact (within the kernels' stated bounds), and the means
// over queries are means over the probed ones (at 32,760 tokens every 8th: 4,095 queries, a
// standard error of std / 64 for a mean whose queries vary with standard deviation std). Up to
// 4,096 queries, every query: the GPU matches the CPU path, which probes every query.
constexpr int64_t kProbedQueries = 4096;
int64_t probe_stride(int64_t n_q);

std::vector<HeadStats> attention_statistics_cuda(const Tensor& q, const Tensor& k, float scale,
                                                 const std::vector<float>& temperature, const TokenGrid* grid,
                                                 const AttentionStatsOptions& options);

// q [B, Nq, H, hd], k, v [B, Nk, H, hd] -> [B, Nq, H, hd] bf16; each query keeps `keep` keys.
Tensor sparse_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                             const std::vector<float>& temperature, int64_t keep);

// Both of one sample's attention call (q [Nq, H, hd], k, v [Nk, H, hd]), as diagnose wants them:
// the statistics' passes over the scores also find each probed query's `keep` kept keys, so
// the sparsified attention of the probed queries (rows 0, s, 2s, ... of sparse_attention_cuda's
// output, the same bits) costs two more passes, not five.
struct StatsAndSparse {
  std::vector<HeadStats> stats;
  Tensor sparse;             // [ceil(Nq / s), H, hd] bf16
  int64_t query_stride = 1;  // s = probe_stride(Nq)
};
StatsAndSparse attention_statistics_and_sparse_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                                                    const std::vector<float>& temperature, const TokenGrid* grid,
                                                    const AttentionStatsOptions& options, int64_t keep);

}  // namespace vdit
#endif
