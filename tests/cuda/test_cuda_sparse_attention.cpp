// Top-k attention on a GPU (sparse_attention_kernels.cu via sparse_attention with CUDA inputs)
// against the CPU's on the same bf16-exact q, k, v: 7 to 4,096 keys, head_dim 64 and 128, keep
// fractions from one key to all, with temperatures, two samples.
//
// Tolerance: 1e-2 of the largest output value, as for the dense attention op: the GPU rounds
// the kept probabilities to bf16 for the tensor cores and the output to bf16. The selection is
// exact for these inputs (no crossed bin has 32 members; the GPU's and the CPU's probabilities
// differ in their last bits only, far below the gaps between these random keys).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace vdit
