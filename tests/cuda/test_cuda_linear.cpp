// The cuBLASLt GEMM ops (autograd/cuda/ops_linear.cpp) against their CPU twins: forward values
// and every input gradient, for odd sizes, batch axes, a shared right operand, fp32 and bf16
// inputs, fresh and accumulating gradient buffers, and bit-identical reruns.
//
// Tolerances. Inputs and the output gradient are rounded to bf16 values first, so every product
// the tensor cores form is exact and only the fp32 accumulation order differs from the CPU:
// 1e-4 of the largest value (K <= 513 terms of relative error 2^-24 each, with margin). An output
// stored as bf16 adds its own rounding, at most 2^-9 of a value: 4e-3 (2^-8) of the largest.
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <vector>

#include "autograd/cuda/cublaslt.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

using testing::bf16_exact;

const Device kGpu = Device::cuda(0);

// bf16-exact operands with fp32 accumulation; a bf16 output adds its rounding.
constexpr double kExact = 1e-4, kBf16Out = 4e-3;

void expect_match(const std::function<Tensor(const std::vector<Tensor>&)>& op, const std::vector<Tensor>& values,
                  const std::vector<DType>& dtypes, const std::vector<bool>& grads) {
  bool any_bf16 = false;
  for (DType d : dtypes) any_bf16 = any_bf16 || d == DType::BF16;
  testing::expect_cuda_matches_cpu({values, dtypes, grads, any_bf16 ? kBf16Out : kExact, kExact}, op, "");
}

// Values exact in bf16, of unit scale.
Tensor random_bf16_values(const Shape& shape, uint64_t seed) { return bf16_exact(shape, seed, -2.0f, 2.0f); }

Tensor linear_of(const std::vector<Tensor>& in) { return linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor()); }
Tensor matmul_of(const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }

TEST(CudaLinear, MatchesTheCpuAtOddSizes) {
  VDIT_REQUIRE_GPU();
  for (const auto& [rows, in, out] : std::vector<std::array<int64_t, 3>>{
           {1, 7, 130}, {7, 130, 1}, {130, 513, 7}, {513, 64, 130}, {1, 1, 1}}) {
    SCOPED_TRACE("rows " + std::to_string(rows) + " in " + std::to_string(in) + " out " + std::to_string(out));
    const std::vector<Tensor> v = {random_bf16_values({rows, in}, 1), random_bf16_values({out, in}, 2),
                                   random_bf16_values({out}, 3)};
    expect_match(linear_of, v, {DType::F32, DType::F32, DType::F32}, {true, true, true});
  }
}

TEST(CudaLinear, BatchAxesAndBothDtypes) {
  VDIT_REQUIRE_GPU();
  const std::vector<Tensor> v = {random_bf16_values({2, 3, 130}, 4), random_bf16_values({513, 130}, 5),
                                 random_bf16_values({513}, 6)};
  // bf16 activations into a trainable fp32 weight (a trained layer of the model).
  expect_match(linear_of, v, {DType::BF16, DType::F32, DType::F32}, {true, true, true});
  // A frozen bf16 weight and bias: only the activation takes a gradient.
  expect_match(linear_of, v, {DType::BF16, DType::BF16, DType::BF16}, {true, false, false});
  // fp32 input, frozen weight, no bias.
  expect_match(linear_of, {v[0], v[1]}, {DType::F32, DType::BF16}, {true, false});
  // Only the weight trains (the input is data).
  expect_match(linear_of, v, {DType::F32, DType::F32, DType::F32}, {false, true, true});
}

TEST(CudaLinear, AccumulatesIntoExistingGradients) {
  VDIT_REQUIRE_GPU();
  const std::vector<Tensor> v = {random_bf16_values({130, 64}, 7), random_bf16_values({7, 64}, 8),
                                 random_bf16_values({7}, 9)};
  // The second linear's backward finds the gradient buffers of the first one's: beta 1.
  auto twice = [](const std::vector<Tensor>& in) { return add(linear_of(in), scale(linear_of(in), 0.5f)); };
  expect_match(twice, v, {DType::F32, DType::F32, DType::F32}, {true, true, true});
}

TEST(CudaLinear, BackwardIsBitIdenticalRunToRun) {
  VDIT_REQUIRE_GPU();
  const Tensor x = random_bf16_values({513, 130}, 10).to(kGpu).to_bf16();
  const Tensor w = random_bf16_values({64, 130}, 11).to(kGpu), b = random_bf16_values({64}, 12).to(kGpu);
  const Tensor seed = random_bf16_values({513, 64}, 13).to(kGpu);
  auto gradients = [&] {
    std::vector<Tensor> in = {x.clone(), w.clone(), b.clone()};
    for (Tensor& t : in) t.set_requires_grad(true);
    sum_all(mul(linear_of(in), seed)).backward();
    return std::vector<Tensor>{in[0].grad(), in[1].grad(), in[2].grad()};
  };
  const std::vector<Tensor> first = gradients(), second = gradients();
  for (size_t i = 0; i < first.size(); ++i)
    EXPECT_EQ(testing::bit_pattern(first[i]), testing::bit_pattern(second[i])) << i;
}

TEST(CudaMatmul, BatchedSharedAndTwoDimensional) {
  VDIT_REQUIRE_GPU();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{7, 130}, {130, 1}},             // plain 2-D
      {{3, 7, 64}, {3, 64, 130}},       // batched
      {{2, 3, 130, 7}, {7, 513}},       // a 2-D right operand shared by every batch entry
      {{1, 1, 1}, {1, 1, 1}}};
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(to_string(sa) + " x " + to_string(sb));
    const std::vector<Tensor> v = {random_bf16_values(sa, 14), random_bf16_values(sb, 15)};
    expect_match(matmul_of, v, {DType::F32, DType::F32}, {true, true});
    expect_match(matmul_of, v, {DType::BF16, DType::F32}, {true, true});
    expect_match(matmul_of, v, {DType::BF16, DType::BF16}, {false, true});
  }
}

TEST(CudaMatmul, MismatchedOperandsAreAnError) {
  VDIT_REQUIRE_GPU();
  const Tensor a = Tensor::zeros({2, 3, 4}, DType::BF16, kGpu);
  EXPECT_THROW(matmul(a, Tensor::zeros({2, 5, 4}, DType::BF16, kGpu)), Error);  // inner sizes
  EXPECT_THROW(matmul(a, Tensor::zeros({3, 4, 4}, DType::BF16, kGpu)), Error);  // batch axes
  EXPECT_THROW(matmul(a, Tensor::zeros({4, 4})), Error);                       // devices
}

TEST(CudaGemm, TimesTheLargestBlockGemm) {
  VDIT_REQUIRE_GPU();
  const double ms = cuda::time_bf16_gemm(4096, 8960, 1536, 3, 0);
  EXPECT_GT(ms, 0.0);
  EXPECT_LT(ms, 1000.0);
}

}  // namespace
}  // namespace vdit
