// Every op's backward against central finite differences (autograd/gradcheck.h), on small odd
// shapes so that a transposed index or a dropped broadcast axis cannot cancel out.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

using testing::requiring_grad;

// float32 differences with eps 1e-2 are accurate to about 1e-4 of the gradient's scale; a
// wrong formula (a dropped term, a factor, a transposed index) is off by far more than 1e-2.
constexpr double kEps = 1e-2;
constexpr double kTolerance = 1e-2;

::testing::AssertionResult gradients_match(const TensorFn& f, const std::vector<Tensor>& inputs) {
  const GradCheckResult r = check_gradients(f, inputs, kEps);
  if (r.max_abs_grad == 0.0) return ::testing::AssertionFailure() << "every numeric gradient is 0";
  if (r.relative() < kTolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << r.relative() << " at " << r.worst;
}

class OpsGradcheck : public ::testing::Test {
 protected:
  Tensor param(const Shape& shape) { return requiring_grad(rng_.normal_tensor(shape)); }
  // Values in [lo, hi): denominators, log arguments and temperatures kept away from 0.
  Tensor uniform(const Shape& shape, float lo, float hi) {
    Tensor t = Tensor::empty(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = lo + (hi - lo) * static_cast<float>(rng_.uniform());
    return t;
  }
  Rng rng_{2024};
};

// --- linear algebra ---

TEST_F(OpsGradcheck, LinearWithBias) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return linear(in[0], in[1], in[2]); },
                              {param({2, 3, 5}), param({4, 5}), param({4})}));
}

TEST_F(OpsGradcheck, LinearWithoutBias) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return linear(in[0], in[1]); },
                              {param({3, 5}), param({4, 5})}));
}

TEST_F(OpsGradcheck, LinearInputOnlyThroughFrozenWeight) {
  const Tensor w = rng_.normal_tensor({4, 5});
  EXPECT_TRUE(gradients_match([&](const auto& in) { return linear(in[0], w); }, {param({3, 5})}));
}

TEST_F(OpsGradcheck, MatmulBatched) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return matmul(in[0], in[1]); },
                              {param({2, 3, 4, 5}), param({2, 3, 5, 3})}));
}

TEST_F(OpsGradcheck, MatmulWithSharedTwoDimensionalRight) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return matmul(in[0], in[1]); },
                              {param({2, 3, 4}), param({4, 5})}));
}

// --- element-wise ---

TEST_F(OpsGradcheck, AddBroadcastsTrailingAxis) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return add(in[0], in[1]); },
                              {param({3, 4}), param({4})}));
}

TEST_F(OpsGradcheck, SubBroadcastsLeftOperand) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return sub(in[0], in[1]); },
                              {param({4}), param({3, 4})}));
}

TEST_F(OpsGradcheck, MulBroadcastsBothOperands) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return mul(in[0], in[1]); },
                              {param({2, 1, 5}), param({1, 3, 5})}));
}

TEST_F(OpsGradcheck, MulByScalarTensor) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return mul(in[0], in[1]); },
                              {param({3, 4}), param({})}));
}

TEST_F(OpsGradcheck, DivBroadcastsBothOperands) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return div(in[0], in[1]); },
                              {param({2, 1, 5}), requiring_grad(uniform({1, 3, 5}, 0.5f, 2.0f))}));
}

TEST_F(OpsGradcheck, DivByBroadcastRow) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return div(in[0], in[1]); },
                              {param({3, 4}), requiring_grad(uniform({4}, -2.0f, -0.5f))}));
}

TEST_F(OpsGradcheck, UnaryOps) {
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> ops = {
      {"scale", [](const Tensor& x) { return scale(x, -1.7f); }},
      {"add_scalar", [](const Tensor& x) { return add_scalar(x, 0.3f); }},
      {"square", [](const Tensor& x) { return square(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"gelu_tanh", [](const Tensor& x) { return gelu_tanh(x); }},
  };
  for (const auto& named_op : ops) {  // not a structured binding: clang 14 cannot capture one
    const auto& op = named_op.second;
    EXPECT_TRUE(gradients_match([&](const auto& in) { return op(in[0]); }, {param({3, 5})})) << named_op.first;
  }
  EXPECT_TRUE(gradients_match([](const auto& in) { return log(in[0]); },
                              {requiring_grad(uniform({3, 5}, 0.5f, 3.0f))})) << "log";
}

// --- shape and movement ---

TEST_F(OpsGradcheck, Reshape) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return mul(reshape(in[0], {5, -1}), in[1]); },
                              {param({3, 5}), param({5, 3})}));
}

// The reshape's input has another consumer: its gradient is the reshape's, moved, plus that one.
TEST_F(OpsGradcheck, ReshapeBesideAnotherUseOfItsInput) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return mul(reshape(in[0], {5, -1}), reshape(exp(in[0]), {5, 3})); },
                              {param({3, 5})}));
  EXPECT_TRUE(gradients_match([](const auto& in) { return add(reshape(in[0], {5, -1}), reshape(in[0], {5, -1})); },
                              {param({3, 5})}));
}

TEST_F(OpsGradcheck, Permute) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return permute(in[0], {2, 0, 1}); },
                              {param({2, 3, 4})}));
}

TEST_F(OpsGradcheck, Transpose) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return transpose(in[0], -1, 0); },
                              {param({2, 3, 5})}));
}

TEST_F(OpsGradcheck, Slice) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return slice(in[0], 1, 1, 3); },
                              {param({2, 4, 3})}));
}

TEST_F(OpsGradcheck, ConcatOfUnequalParts) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return concat({in[0], in[1], in[2]}, 1); },
                              {param({2, 1, 3}), param({2, 3, 3}), param({2, 2, 3})}));
}

TEST_F(OpsGradcheck, SplitPartsReordered) {
  EXPECT_TRUE(gradients_match(
      [](const auto& in) {
        const std::vector<Tensor> parts = split(in[0], -1, {1, 3, 1});
        return concat({parts[2], mul(parts[1], parts[1]), parts[0]}, -1);
      },
      {param({3, 5})}));
}

TEST_F(OpsGradcheck, ChunkWithOneChunkUnused) {
  EXPECT_TRUE(gradients_match(
      [](const auto& in) {
        const std::vector<Tensor> parts = chunk(in[0], 0, 3);
        return sub(parts[2], scale(parts[0], 2.0f));
      },
      {param({6, 2})}));
}

// --- reductions ---

TEST_F(OpsGradcheck, SumOverSeveralAxes) {
  for (bool keepdim : {false, true})
    EXPECT_TRUE(gradients_match([&](const auto& in) { return sum(in[0], {0, 2}, keepdim); },
                                {param({2, 3, 4})}))
        << "keepdim " << keepdim;
}

TEST_F(OpsGradcheck, MeanOverSeveralAxes) {
  for (bool keepdim : {false, true})
    EXPECT_TRUE(gradients_match([&](const auto& in) { return mean(in[0], {-1, 1}, keepdim); },
                                {param({3, 2, 5})}))
        << "keepdim " << keepdim;
}

TEST_F(OpsGradcheck, SumAll) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return sum_all(in[0]); }, {param({3, 4})}));
}

TEST_F(OpsGradcheck, MseLossBothInputs) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return mse_loss(in[0], in[1]); },
                              {param({3, 5}), param({3, 5})}));
}

// --- normalisation and rotation ---

TEST_F(OpsGradcheck, Softmax) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return softmax(in[0]); }, {param({3, 7})}));
}

TEST_F(OpsGradcheck, LayerNormAffine) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return layer_norm(in[0], in[1], in[2], 1e-5f); },
                              {param({3, 7}), param({7}), param({7})}));
}

TEST_F(OpsGradcheck, LayerNormWithoutAffine) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return layer_norm(in[0], {}, {}, 1e-5f); },
                              {param({2, 3, 7})}));
}

TEST_F(OpsGradcheck, RmsNormWithWeight) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return rms_norm(in[0], in[1], 1e-6f); },
                              {param({3, 7}), param({7})}));
}

TEST_F(OpsGradcheck, RmsNormWithoutWeight) {
  EXPECT_TRUE(gradients_match([](const auto& in) { return rms_norm(in[0], {}, 1e-6f); },
                              {param({3, 7})}));
}

TEST_F(OpsGradcheck, Rope) {
  const Tensor angles = uniform({5, 3}, -3.0f, 3.0f);  // [N, hd / 2]
  Tensor cos = Tensor::empty(angles.shape()), sin = Tensor::empty(angles.shape());
  for (int64_t i = 0; i < angles.numel(); ++i) {
    cos.data()[i] = std::cos(angles.data()[i]);
    sin.data()[i] = std::sin(angles.data()[i]);
  }
  EXPECT_TRUE(gradients_match([&](const auto& in) { return rope(in[0], cos, sin); },
                              {param({2, 5, 3, 6})}));
}

// --- attention ---

TEST_F(OpsGradcheck, AttentionWithTemperatureAndKeyMask) {
  AttentionOptions options;
  options.key_mask = Tensor::from_vector({2, 6}, {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1});
  const Tensor temperature = requiring_grad(uniform({2}, 0.6f, 1.5f));
  EXPECT_TRUE(gradients_match(
      [&](const auto& in) {
        AttentionOptions o = options;
        o.temperature = in[3];
        return attention(in[0], in[1], in[2], o);
      },
      {param({2, 5, 2, 4}), param({2, 6, 2, 4}), param({2, 6, 2, 4}), temperature}));
}

TEST_F(OpsGradcheck, AttentionWithExplicitScale) {
  AttentionOptions options;
  options.scale = 0.8f;
  EXPECT_TRUE(gradients_match([&](const auto& in) { return attention(in[0], in[1], in[2], options); },
                              {param({1, 3, 2, 4}), param({1, 7, 2, 4}), param({1, 7, 2, 4})}));
}

}  // namespace
}  // namespace vdit
