// Gradients that move instead of being copied (autograd/grad_accumulate.h take_grad): reshape,
// add and sub hand the output's gradient to an input that has none yet, and element-wise
// backward rewrites dy in place as its input's gradient. Each case gives a tensor several
// consumers, or one op the same tensor twice, in orders where a buffer shared between two
// slots would be read after another op had added into it; the CPU ops are the reference.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/checkpoint.h"
#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

using testing::bf16_exact;
using testing::expect_cuda_matches_cpu;
using testing::ParityCase;

// fp32 inputs: both sides compute in fp32 (GELU's and exp's expf against the CPU's polynomial
// exp, sums in a different order), a few ulps of the scale; a gradient added twice or lost
// is off by the order of the scale itself.
constexpr double kTolerance = 1e-4;

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

void expect_match(const Op& op, const std::vector<Shape>& shapes, const std::string& what) {
  ParityCase c{{}, {}, {}, kTolerance, kTolerance};
  for (size_t i = 0; i < shapes.size(); ++i) {
    c.inputs.push_back(bf16_exact(shapes[i], 30 + i));
    c.dtypes.push_back(DType::F32);
  }
  expect_cuda_matches_cpu(c, op, what);
}

const Shape kX{7, 130}, kRow{1, 130};

TEST(CudaGradMoves, ReshapeAndAddBesideOtherUsesOfTheirInputs) {
  VDIT_REQUIRE_GPU();
  expect_match([](const auto& in) {
    const Tensor s = add(in[0], in[1]);
    return add(mul(reshape(s, {130, 7}), reshape(in[0], {130, 7})), reshape(gelu_tanh(in[1]), {130, 7}));
  }, {kX, kX}, "reshape, add");
}

TEST(CudaGradMoves, OneTensorAsBothOperands) {
  VDIT_REQUIRE_GPU();
  expect_match([](const auto& in) { return add(mul(in[0], in[0]), add(in[0], in[0])); }, {kX}, "x x + (x + x)");
  expect_match([](const auto& in) { return mul(sub(in[0], in[0]), in[0]); }, {kX}, "(x - x) x");
}

// b = tanh(x) is recorded before a = gelu(x) and c = exp(a): in the backward pass a's gradient
// is complete only after exp's, and x gets contributions from gelu and tanh after add moved dy.
TEST(CudaGradMoves, AddWhoseInputsHaveLaterConsumers) {
  VDIT_REQUIRE_GPU();
  expect_match([](const auto& in) {
    const Tensor b = tanh(in[0]), a = gelu_tanh(in[0]), c = exp(a);
    return add(add(a, b), mul(c, b));
  }, {kX}, "a + b + exp(a) b");
}

TEST(CudaGradMoves, BroadcastOperands) {
  VDIT_REQUIRE_GPU();
  expect_match([](const auto& in) { return sub(in[1], add(mul(in[0], in[1]), in[1])); }, {kX, kRow},
               "w - (x w + w)");
  expect_match([](const auto& in) { return add(in[1], silu(in[0])); }, {kX, kRow}, "w + silu(x)");
}

TEST(CudaGradMoves, CheckpointBesideAnotherUseOfItsInput) {
  VDIT_REQUIRE_GPU();
  expect_match([](const auto& in) {
    const Tensor y = checkpoint([](const Tensor& t) { return gelu_tanh(mul(t, t)); }, in[0]);
    return add(y, mul(in[0], in[1]));
  }, {kX, kX}, "checkpoint(gelu(x x)) + x y");
}

}  // namespace
}  // namespace vdit
