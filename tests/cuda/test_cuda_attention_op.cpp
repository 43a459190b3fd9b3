// The attention op on CUDA (autograd/cuda/ops_attention.cpp over the fused kernels) against the
// CPU op: output and the gradients of q, k, v and the temperature, with key masks, fp32 and bf16
// inputs, self- and cross-attention lengths. The kernels' own tests (test_attention_cuda.cu)
// cover their numerics in depth; this checks the op's wiring: layouts, dtypes, saved tensors,
// accumulation into the gradient buffers.
//
// Tolerances: inputs are bf16-exact, so the difference is the kernel's bf16 roundings of the
// probabilities (forward, and for dV) and of dS (for dQ, dK), each 2^-9 relative, and of the
// output: 1e-2 of the largest output value, 2e-2 of the largest value of each gradient.
#include <gtest/gtest.h>

#include <vector>

#include "tests/cuda/gpu_testing.h"
#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

// in: q, k, v, then optionally the temperature and the key mask.
Tensor attention_of(const std::vector<Tensor>& in) {
  AttentionOptions options;
  if (in.size() > 3) options.temperature = in[3];
  if (in.size() > 4) options.key_mask = in[4];
  return attention(in[0], in[1], in[2], options);
}

constexpr double kForward = 1e-2, kGradient = 2e-2;

void expect_match(const std::vector<Tensor>& values, const std::vector<DType>& dtypes, const std::vector<bool>& grads) {
  testing::expect_cuda_matches_cpu({values, dtypes, grads, kForward, kGradient}, attention_of, "");
}

// [batch, keys] of 1, with every third key of the second sample masked out (0).
Tensor key_mask(int64_t batch, int64_t keys) {
  std::vector<float> m(static_cast<size_t>(batch * keys), 1.0f);
  for (int64_t j = 0; j < keys; j += 3) m[static_cast<size_t>((batch - 1) * keys + j)] = 0.0f;
  return Tensor::from_vector({batch, keys}, m);
}

struct Case {
  int64_t batch, q_len, k_len, heads, head_dim;
};

TEST(CudaAttentionOp, MatchesTheCpuOp) {
  VDIT_REQUIRE_GPU();
  for (const Case& c : std::vector<Case>{{1, 7, 7, 2, 64}, {2, 130, 513, 2, 128}, {1, 1, 1, 1, 64}, {2, 513, 130, 3, 64}}) {
    SCOPED_TRACE(std::to_string(c.q_len) + " queries, " + std::to_string(c.k_len) + " keys, head_dim " +
                 std::to_string(c.head_dim));
    const Tensor q = testing::bf16_exact({c.batch, c.q_len, c.heads, c.head_dim}, 1, -2.0f, 2.0f);
    const Tensor k = testing::bf16_exact({c.batch, c.k_len, c.heads, c.head_dim}, 2, -2.0f, 2.0f);
    const Tensor v = testing::bf16_exact({c.batch, c.k_len, c.heads, c.head_dim}, 3);
    expect_match({q, k, v}, {DType::F32, DType::F32, DType::F32}, {true, true, true});
    expect_match({q, k, v}, {DType::BF16, DType::BF16, DType::BF16}, {true, false, true});
    std::vector<float> tau(static_cast<size_t>(c.heads));
    for (size_t h = 0; h < tau.size(); ++h) tau[h] = 0.75f + 0.5f * static_cast<float>(h);
    const Tensor temperature = Tensor::from_vector({c.heads}, tau);
    expect_match({q, k, v, temperature, key_mask(c.batch, c.k_len)},
                 {DType::BF16, DType::BF16, DType::BF16, DType::F32, DType::F32}, {true, true, true, true, false});
  }
}

}  // namespace
}  // namespace vdit
