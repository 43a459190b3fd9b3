// Recomputation instead of storage gives the very same gradients while holding less.
#include <gtest/gtest.h>

#include "autograd/checkpoint.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "layers/vdit.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/trainable.h"

namespace vdit {
namespace {

using testing::bit_pattern;

Tensor two_layers(const Tensor& x, const Tensor& w1, const Tensor& w2) {
  return linear(gelu_tanh(linear(x, w1)), w2);
}

TEST(Checkpoint, GradientsAreBitIdenticalToStoringEverything) {
  Rng rng(1);
  const Tensor w1 = rng.normal_tensor({16, 8}), w2 = rng.normal_tensor({8, 16});
  Tensor a = rng.normal_tensor({5, 8}), b = a.clone();
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  sum_all(square(two_layers(a, w1, w2))).backward();
  sum_all(square(checkpoint([&](const Tensor& in) { return two_layers(in, w1, w2); }, b))).backward();
  EXPECT_EQ(bit_pattern(a.grad()), bit_pattern(b.grad()));
}

TEST(Checkpoint, PassesANumericGradientCheck) {
  Rng rng(2);
  const Tensor w1 = rng.normal_tensor({6, 4}, 0.5f), w2 = rng.normal_tensor({3, 6}, 0.5f);
  Tensor x = rng.normal_tensor({2, 4});
  x.set_requires_grad(true);
  const GradCheckResult r = check_gradients(
      [&](const std::vector<Tensor>& in) { return checkpoint([&](const Tensor& t) { return two_layers(t, w1, w2); }, in[0]); },
      {x});
  EXPECT_LT(r.relative(), 1e-2) << r.worst;
}

// A function can tell its rerun in the backward pass (FeedForward then saves nothing more).
TEST(Checkpoint, TellsItsFunctionWhenItIsRerunInTheBackwardPass) {
  Tensor x = Rng(3).normal_tensor({2, 3});
  x.set_requires_grad(true);
  std::vector<bool> rerun;
  const Tensor y = checkpoint([&](const Tensor& t) {
    rerun.push_back(checkpoint_recomputing());
    return square(t);
  }, x);
  EXPECT_FALSE(checkpoint_recomputing());
  sum_all(y).backward();
  EXPECT_EQ(rerun, (std::vector<bool>{false, true}));
  EXPECT_FALSE(checkpoint_recomputing());
}

TEST(Checkpoint, FrozenBlocksAfterTheTrainableOneHoldLessAndGiveTheSameGradients) {
  const VDiTConfig config = testing::small_config({.dim = 32, .ffn_dim = 64, .num_heads = 2, .num_layers = 4});
  Rng rng(3);
  const Tensor latents = rng.normal_tensor({1, 4, 2, 8, 8}), context = rng.normal_tensor({1, 5, 6});
  auto run = [&](bool recompute) {
    VDiT model(config, testing::params_with_random_head(config, 4, 0.3f));
    model.set_recompute_frozen_blocks(recompute);
    const std::vector<TrainableParameter> trained =
        make_trainable(model, {"blocks.0.ffn.0.weight", "blocks.0.self_attn.q.weight"}, InitMode::Keep, 0);
    const int64_t before = tensor_memory().live_bytes;
    const Tensor loss = sum_all(square(model.forward(latents, {400.0}, context)));
    const int64_t held = tensor_memory().live_bytes - before;
    loss.backward();
    std::vector<std::vector<uint32_t>> grads;
    for (const TrainableParameter& p : trained) grads.push_back(bit_pattern(p.value.grad()));
    return std::make_pair(held, grads);
  };
  const auto stored = run(false), recomputed = run(true);
  EXPECT_EQ(recomputed.second, stored.second);
  EXPECT_LT(recomputed.first, stored.first / 2) << "held " << recomputed.first << " vs " << stored.first;
}

}  // namespace
}  // namespace vdit
