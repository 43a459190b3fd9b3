// Top-k attention on a GPU (sparse_attention_kernels.cu via sparse_attention with CUDA inputs)
// against the CPU's on the same bf16-exact q, k, v: 7 to 4,096 keys, head_dim 64 and 128, keep
// fractions from one key to all, with temperatures, two samples.
//
// Tolerance: 1e-2 of the largest output value, as for the dense attention op: the GPU rounds
// the kept probabilities to bf16 for the tensor cores and the output to bf16. The selection is
// exact for these inputs: where a query's crossed fine bin holds several keys the GPU keeps the
// first in key order (sparse_attention_kernels.cuh), which is the CPU's choice for ties (tested
// below), and distinct random keys' probabilities are far apart next to the bins' 0.78%.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "diagnostics/diagnostics_cuda.h"
#include "diagnostics/sparse_attention.h"
#include "tests/autograd_testing.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

struct Case {
  int64_t q_len, k_len, head_dim;
  double keep;
};

TEST(CudaSparseAttention, MatchesTheCpu) {
  VDIT_REQUIRE_GPU();
  for (const Case& c : std::vector<Case>{{7, 7, 64, 0.3}, {130, 130, 128, 0.1}, {100, 513, 64, 0.05},
                                         {513, 513, 128, 1.0}, {64, 4096, 64, 0.1}, {20, 4096, 128, 1e-9}}) {
    SCOPED_TRACE(std::to_string(c.q_len) + " queries, " + std::to_string(c.k_len) + " keys, hd " +
                 std::to_string(c.head_dim) + ", keep " + std::to_string(c.keep));
    const Tensor q = testing::bf16_exact({2, c.q_len, 3, c.head_dim}, 1, -2.0f, 2.0f);
    const Tensor k = testing::bf16_exact({2, c.k_len, 3, c.head_dim}, 2, -2.0f, 2.0f);
    const Tensor v = testing::bf16_exact({2, c.k_len, 3, c.head_dim}, 3);
    const std::vector<float> tau{0.5f, 1.0f, 1.7f};
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    const Tensor cpu = sparse_attention(q, k, v, scale, tau, c.keep);
    const Device gpu_device = Device::cuda(0);
    const Tensor gpu = sparse_attention(q.to_bf16().to(gpu_device), k.to_bf16().to(gpu_device), v.to_bf16().to(gpu_device),
                                        scale, tau, c.keep);
    EXPECT_EQ(gpu.dtype(), DType::BF16);
    EXPECT_TRUE(testing::all_close(gpu.to_vector(), testing::widen(cpu.to_vector()), 1e-2));
  }
}

// Integers in [-2, 2]: products and sums of them are exact in fp32 in any order, so equal keys
// get equal logits on the CPU (whatever its GEMM's blocking) as on the GPU.
Tensor small_integers(const Shape& shape, uint64_t seed) {
  Tensor t = testing::bf16_exact(shape, seed, -2.5f, 2.5f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = std::round(t.data()[i]);
  return t;
}

// Many keys of one probability: zero queries (every key ties) and keys repeating 8 vectors
// (8 probabilities, Nk / 8 keys each). The query's crossed bin then holds hundreds of members;
// the GPU keeps the first in key order, as the CPU breaks ties, so both keep the same keys.
TEST(CudaSparseAttention, TiesGoToTheLowerKeyAsOnTheCpu) {
  VDIT_REQUIRE_GPU();
  const int64_t n_k = 4096, heads = 2, hd = 64;
  const Tensor distinct = small_integers({1, 8, heads, hd}, 5);
  Tensor repeated = Tensor::empty({1, n_k, heads, hd});
  for (int64_t j = 0; j < n_k; ++j)
    std::copy_n(distinct.data() + j % 8 * heads * hd, heads * hd, repeated.data() + j * heads * hd);
  const Tensor v = testing::bf16_exact({1, n_k, heads, hd}, 6);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const Device gpu_device = Device::cuda(0);
  for (const bool zero_queries : {true, false})
    for (const double keep : {0.1, 0.3, 0.77}) {
      SCOPED_TRACE(std::string(zero_queries ? "zero queries" : "8 repeated keys") + ", keep " + std::to_string(keep));
      const Tensor q = zero_queries ? Tensor::zeros({1, 70, heads, hd}) : small_integers({1, 70, heads, hd}, 7);
      const Tensor k = zero_queries ? testing::bf16_exact({1, n_k, heads, hd}, 8) : repeated;
      const Tensor cpu = sparse_attention(q, k, v, scale, {}, keep);
      const Tensor gpu = sparse_attention(q.to_bf16().to(gpu_device), k.to_bf16().to(gpu_device), v.to_bf16().to(gpu_device),
                                          scale, {}, keep);
      EXPECT_TRUE(testing::all_close(gpu.to_vector(), testing::widen(cpu.to_vector()), 1e-2));
    }
}

// diagnose's call on a GPU: the statistics' passes find the selection that sparse_attention's
// own passes find (the same window, bins and counts), so the probed queries' outputs are the
// same bits (every query up to 4,096, every 3rd of 8,448), and the statistics are those of
// attention_statistics alone.
TEST(CudaSparseAttention, TheStatisticsFindTheSameSelection) {
  VDIT_REQUIRE_GPU();
  const int64_t heads = 2;
  const Device gpu_device = Device::cuda(0);
  const std::vector<float> tau{0.8f, 1.3f};
  for (const TokenGrid grid : {TokenGrid{4, 32, 32}, TokenGrid{2, 64, 66}})
  for (const int64_t hd : {64, 128})
    for (const int64_t keep : {int64_t{1}, int64_t{409}, grid.tokens() - 3}) {
      const int64_t n = grid.tokens();
      SCOPED_TRACE(std::to_string(n) + " tokens, hd " + std::to_string(hd) + ", keep " + std::to_string(keep));
      const Shape shape{n, heads, hd}, batched{1, n, heads, hd};
      const Tensor q = testing::bf16_exact(shape, 11, -2.0f, 2.0f).to(gpu_device);
      const Tensor k = testing::bf16_exact(shape, 12, -2.0f, 2.0f).to(gpu_device);
      const Tensor v = testing::bf16_exact(shape, 13).to(gpu_device);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      const AttentionStatsOptions options;
      const StatsAndSparse both = attention_statistics_and_sparse_cuda(q, k, v, scale, tau, &grid, options, keep);
      const Tensor alone = sparse_attention_cuda(reshape(q, batched), reshape(k, batched), reshape(v, batched), scale, tau, keep);
      const int64_t stride = probe_stride(n), row = heads * hd;
      EXPECT_EQ(both.query_stride, stride);
      const std::vector<float> probed = both.sparse.to_vector(), every = alone.to_vector();
      ASSERT_EQ(static_cast<int64_t>(probed.size()), (n + stride - 1) / stride * row);
      for (int64_t i = 0; i < static_cast<int64_t>(probed.size()); ++i)
        ASSERT_EQ(probed[i], every[i / row * stride * row + i % row]) << "probed query " << i / row;
      const std::vector<HeadStats> stats = attention_statistics_cuda(q, k, scale, tau, &grid, options);
      ASSERT_EQ(both.stats.size(), stats.size());
      for (size_t h = 0; h < stats.size(); ++h) {
        EXPECT_EQ(both.stats[h].entropy, stats[h].entropy);
        EXPECT_EQ(both.stats[h].keys_for_90, stats[h].keys_for_90);
        EXPECT_EQ(both.stats[h].keys_for_95, stats[h].keys_for_95);
        EXPECT_EQ(both.stats[h].sink_keys, stats[h].sink_keys);
        EXPECT_EQ(both.stats[h].pooled_map, stats[h].pooled_map);
      }
    }
}

}  // namespace
}  // namespace vdit
