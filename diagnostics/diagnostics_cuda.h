#pragma once
// The GPU twins of attention_statistics and sparse_attention, which dispatch to them when their
// inputs are on a CUDA device (after their own input checks): attention_stats_cuda.cpp and
// sparse_attention_cuda.cpp over autograd/cuda's attention_stats_kernels and
// sparse_attention_kernels. Only in a CUDA build.
#if VDITKIT_CUDA
#include <vector>

#include "diagnostics/attention_stats.h"

namespace vdit {

std::vector<HeadStats> attention_statistics_cuda(const Tensor& q, const Tensor& k, float scale,
                                                 const std::vector<float>& temperature, const TokenGrid* grid,
                                                 const AttentionStatsOptions& options);

// q [B, Nq, H, hd], k, v [B, Nk, H, hd] -> [B, Nq, H, hd] bf16; each query keeps `keep` keys.
Tensor sparse_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                             const std::vector<float>& temperature, int64_t keep);

}  // namespace vdit
#endif
