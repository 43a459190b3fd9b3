// Fused attention (autograd/attention.cpp) against a naive float64 softmax(q k^T c) v, at
// sizes on both sides of its 256-query and 512-key blocks; its backward against the same
// attention composed from simpler ops; masking, including keys that are all masked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

using testing::all_close;
using testing::bit_pattern;
using testing::on_threads;
using testing::requiring_grad;

constexpr double kTolerance = 1e-5;

// softmax(q k^T * scale / temperature[h]) v per batch and head, in float64. Keys where the
// mask is 0 get no mass; a query whose keys are all masked gets zeros (attention.cpp's choice).
std::vector<double> reference_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const AttentionOptions& options) {
  const int64_t batch = q.size(0), q_len = q.size(1), k_len = k.size(1), heads = q.size(2),
                head_dim = q.size(3);
  const std::vector<float> pq = q.to_vector(), pk = k.to_vector(), pv = v.to_vector();
  const std::vector<float> mask =
      options.key_mask.defined() ? options.key_mask.to_vector() : std::vector<float>(batch * k_len, 1.0f);
  const std::vector<float> tau =
      options.temperature.defined() ? options.temperature.to_vector() : std::vector<float>(heads, 1.0f);
  const double scale = options.scale > 0.0f ? options.scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  auto at = [&](int64_t b, int64_t n, int64_t len, int64_t h) { return ((b * len + n) * heads + h) * head_dim; };
  std::vector<double> out(pq.size(), 0.0), p(k_len);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < q_len; ++i) {
        double max_s = -INFINITY;
        for (int64_t j = 0; j < k_len; ++j) {
          double s = 0.0;
          for (int64_t d = 0; d < head_dim; ++d)
            s += static_cast<double>(pq[at(b, i, q_len, h) + d]) * pk[at(b, j, k_len, h) + d];
          p[j] = mask[b * k_len + j] != 0.0f ? s * scale / tau[h] : -INFINITY;
          max_s = std::max(max_s, p[j]);
        }
        if (max_s == -INFINITY) continue;  // every key masked
        double total = 0.0;
        for (int64_t j = 0; j < k_len; ++j) total += p[j] = std::exp(p[j] - max_s);
        double* o = out.data() + at(b, i, q_len, h);
        for (int64_t j = 0; j < k_len; ++j)
          for (int64_t d = 0; d < head_dim; ++d) o[d] += p[j] / total * pv[at(b, j, k_len, h) + d];
      }
  return out;
}

// [2, k_len]: batch 0 sees every key, batch 1 loses every third one (keys 1, 4, 7, ...).
Tensor partial_mask(int64_t k_len) {
  Tensor mask = Tensor::full({2, k_len}, 1.0f);
  for (int64_t j = 1; j < k_len; j += 3) mask.data()[k_len + j] = 0.0f;
  return mask;
}

struct Qkv {
  Tensor q, k, v;
};

Qkv random_qkv(Rng& rng, int64_t q_len, int64_t k_len, int64_t heads, int64_t head_dim) {
  return {rng.normal_tensor({2, q_len, heads, head_dim}), rng.normal_tensor({2, k_len, heads, head_dim}),
          rng.normal_tensor({2, k_len, heads, head_dim})};
}

class AttentionSizes : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(AttentionSizes, MatchesFloat64ReferenceWithTemperatureAndMask) {
  const auto [q_len, k_len, head_dim] = GetParam();
  Rng rng(q_len * 1000 + k_len + head_dim);
  const Qkv in = random_qkv(rng, q_len, k_len, 2, head_dim);
  AttentionOptions options;
  options.temperature = Tensor::from_vector({2}, {0.7f, 1.3f});
  options.key_mask = partial_mask(k_len);
  const Tensor out = attention(in.q, in.k, in.v, options);
  EXPECT_EQ(out.shape(), in.q.shape());
  EXPECT_TRUE(all_close(out.to_vector(), reference_attention(in.q, in.k, in.v, options), kTolerance));
}

INSTANTIATE_TEST_SUITE_P(Attention, AttentionSizes,
                         ::testing::Combine(::testing::Values(1, 7, 130, 300, 513),
                                            ::testing::Values(1, 7, 130, 300, 513),
                                            ::testing::Values(8, 64)),
                         [](const auto& info) {
                           return "q" + std::to_string(std::get<0>(info.param)) + "_k" +
                                  std::to_string(std::get<1>(info.param)) + "_hd" +
                                  std::to_string(std::get<2>(info.param));
                         });

TEST(Attention, WithoutOptionsIsPlainScaledSoftmax) {
  Rng rng(5);
  const Qkv in = random_qkv(rng, 130, 513, 2, 64);
  EXPECT_TRUE(all_close(attention(in.q, in.k, in.v).to_vector(),
                        reference_attention(in.q, in.k, in.v, {}), kTolerance));
  AttentionOptions scaled;
  scaled.scale = 0.05f;
  EXPECT_TRUE(all_close(attention(in.q, in.k, in.v, scaled).to_vector(),
                        reference_attention(in.q, in.k, in.v, scaled), kTolerance));
}

TEST(Attention, KeysMaskedThroughAWholeKeyBlock) {
  // Batch 1's first 512 keys (one whole block) are masked: its running maximum stays -inf
  // until the second block, whose keys then carry all the mass.
  Rng rng(6);
  const Qkv in = random_qkv(rng, 7, 600, 2, 8);
  AttentionOptions options;
  options.key_mask = Tensor::full({2, 600}, 1.0f);
  std::fill(options.key_mask.data() + 600, options.key_mask.data() + 600 + 512, 0.0f);
  EXPECT_TRUE(all_close(attention(in.q, in.k, in.v, options).to_vector(),
                        reference_attention(in.q, in.k, in.v, options), kTolerance));
}

TEST(Attention, AllMaskedKeyRowGivesZerosAndZeroGradients) {
  Rng rng(7);
  Qkv in = random_qkv(rng, 5, 600, 2, 8);
  for (Tensor* t : {&in.q, &in.k, &in.v}) t->set_requires_grad(true);
  AttentionOptions options;
  options.temperature = requiring_grad(Tensor::from_vector({2}, {0.8f, 1.2f}));
  options.key_mask = Tensor::full({2, 600}, 1.0f);
  std::fill(options.key_mask.data() + 600, options.key_mask.data() + 1200, 0.0f);  // batch 1
  const Tensor out = attention(in.q, in.k, in.v, options);
  const std::vector<float> values = out.to_vector();
  const size_t half = values.size() / 2;
  EXPECT_EQ(std::vector<float>(values.begin() + half, values.end()), std::vector<float>(half, 0.0f));
  EXPECT_TRUE(all_close(out.to_vector(), reference_attention(in.q, in.k, in.v, options), kTolerance));

  sum_all(mul(out, rng.normal_tensor(out.shape()))).backward();
  for (const Tensor* t : {&in.q, &in.k, &in.v}) {
    const std::vector<float> grad = t->grad().to_vector();
    const size_t n = grad.size() / 2;
    for (float g : grad) ASSERT_TRUE(std::isfinite(g));
    EXPECT_EQ(std::vector<float>(grad.begin() + n, grad.end()), std::vector<float>(n, 0.0f));
    EXPECT_NE(std::vector<float>(grad.begin(), grad.begin() + n), std::vector<float>(n, 0.0f));
  }
  for (float g : options.temperature.grad().to_vector()) EXPECT_TRUE(std::isfinite(g));
}

// The same attention composed from matmul, softmax and movement ops, whose gradients are
// checked one by one (test_ops_gradcheck.cpp). Masked keys get a logit of -1e30.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& temperature,
                          const Tensor& mask) {
  const int64_t heads = q.size(2), k_len = k.size(1);
  const Tensor mask_bias = scale(add_scalar(mask, -1.0f), 1e30f);  // 0 kept, -1e30 masked
  Tensor s = matmul(permute(q, {0, 2, 1, 3}), permute(k, {0, 2, 3, 1}));  // [B, H, Nq, Nk]
  s = div(scale(s, 1.0f / std::sqrt(static_cast<float>(q.size(3)))), reshape(temperature, {heads, 1, 1}));
  s = add(s, reshape(mask_bias, {-1, 1, 1, k_len}));
  return permute(matmul(softmax(s), permute(v, {0, 2, 1, 3})), {0, 2, 1, 3});
}

TEST(Attention, BackwardAcrossBlocksMatchesComposedOps) {
  Rng rng(8);
  Qkv in = random_qkv(rng, 300, 520, 2, 8);
  for (Tensor* t : {&in.q, &in.k, &in.v}) t->set_requires_grad(true);
  Tensor temperature = requiring_grad(Tensor::from_vector({2}, {0.7f, 1.3f}));
  const Tensor mask = partial_mask(520);
  const Tensor g = rng.normal_tensor(in.q.shape());
  // Gradients of sum(g * attention) for q, k, v and temperature.
  auto grads = [&](const Tensor& out) {
    for (Tensor* t : {&in.q, &in.k, &in.v, &temperature}) t->zero_grad();
    sum_all(mul(out, g)).backward();
    return std::vector<Tensor>{in.q.grad(), in.k.grad(), in.v.grad(), temperature.grad()};
  };
  AttentionOptions options;
  options.temperature = temperature;
  options.key_mask = mask;
  const std::vector<Tensor> fused = grads(attention(in.q, in.k, in.v, options));
  const std::vector<Tensor> composed = grads(composed_attention(in.q, in.k, in.v, temperature, mask));
  const char* names[] = {"q", "k", "v", "temperature"};
  for (size_t i = 0; i < fused.size(); ++i) {
    const std::vector<float> c = composed[i].to_vector();
    EXPECT_TRUE(all_close(fused[i].to_vector(), std::vector<double>(c.begin(), c.end()), kTolerance))
        << names[i];
  }
}

TEST(Attention, RejectsMismatchedInputs) {
  const Tensor q = Tensor::zeros({1, 3, 2, 4}), k = Tensor::zeros({1, 5, 2, 4});
  EXPECT_THROW(attention(q, k, Tensor::zeros({1, 4, 2, 4})), Error);
  EXPECT_THROW(attention(q, Tensor::zeros({1, 5, 2, 8}), Tensor::zeros({1, 5, 2, 8})), Error);
  AttentionOptions bad_temperature;
  bad_temperature.temperature = Tensor::full({3}, 1.0f);
  EXPECT_THROW(attention(q, k, k, bad_temperature), Error);
  AttentionOptions bad_mask;
  bad_mask.key_mask = Tensor::full({1, 4}, 1.0f);
  EXPECT_THROW(attention(q, k, k, bad_mask), Error);
  AttentionOptions trained_mask;
  trained_mask.key_mask = requiring_grad(Tensor::full({1, 5}, 1.0f));
  EXPECT_THROW(attention(q, k, k, trained_mask), Error);
}

// The bits of attention's output and of every gradient, with temperature and mask.
std::vector<std::vector<uint32_t>> attention_bits(int64_t q_len, int64_t k_len) {
  Rng rng(9);
  Qkv in = random_qkv(rng, q_len, k_len, 2, 8);
  for (Tensor* t : {&in.q, &in.k, &in.v}) t->set_requires_grad(true);
  AttentionOptions options;
  options.temperature = requiring_grad(Tensor::from_vector({2}, {0.7f, 1.3f}));
  options.key_mask = partial_mask(k_len);
  const Tensor out = attention(in.q, in.k, in.v, options);
  sum_all(mul(out, rng.normal_tensor(out.shape()))).backward();
  return {bit_pattern(out), bit_pattern(in.q.grad()), bit_pattern(in.k.grad()), bit_pattern(in.v.grad()),
          bit_pattern(options.temperature.grad())};
}

TEST(Determinism, AttentionBackwardIsRepeatable) {
  EXPECT_EQ(attention_bits(300, 520), attention_bits(300, 520));
}

// Backward splits keys into groups whose dq shares are added in group order, a wave of
// (batch, head) pairs at a time: 520 keys make 5 groups, 200 keys 2 (two pairs per wave on 3
// threads). Neither the split nor the wave may show in the bits.
TEST(Determinism, AttentionIgnoresThreadCount) {
  for (const int64_t k_len : {520, 200}) {
    const auto one = on_threads(1, [&] { return attention_bits(300, k_len); });
    EXPECT_EQ(one, on_threads(2, [&] { return attention_bits(300, k_len); })) << k_len << " keys";
    EXPECT_EQ(one, on_threads(3, [&] { return attention_bits(300, k_len); })) << k_len << " keys";
  }
}

}  // namespace
}  // namespace vdit
