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
#include <random>
#include <vector>

#include "autograd/cuda/cublaslt.h"
#include "autograd/ops.h"
#include "tests/autograd_testing.h"
#include "tests/cuda/gpu_testing.h"

namespace vdit {
namespace {

using testing::all_close;

constexpr double kExact = 1e-4;     // bf16-exact operands, fp32 accumulation
constexpr double kBf16Out = 4e-3;   // plus the bf16 rounding of the output

const Device kGpu = Device::cuda(0);

// Random values that are exact in bf16.
Tensor random_bf16_values(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(numel(shape)));
  for (float& x : v) x = normal(rng);
  return Tensor::from_vector(shape, v).to_bf16().to_f32();
}

std::vector<double> widened(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// An input as one side sees it: on the CPU always fp32 (the reference); on the GPU in `dtype`.
Tensor on(Device device, const Tensor& values, DType dtype, bool grad) {
  Tensor t = values;
  if (device.is_cuda()) t = (dtype == DType::BF16 ? values.to_bf16() : values).to(device);
  else t = values.clone();
  if (grad) t.set_requires_grad(true);
  return t;
}

// Runs `op` over the inputs on one device, seeds the output's gradient with `seed` (the
// backward of sum(out * seed)) and returns the output followed by each input's gradient
// (undefined for inputs that take none). `accumulate` runs the backward twice, so the second
// pass adds into existing gradient buffers (beta 1).
std::vector<Tensor> run(Device device, const std::function<Tensor(const std::vector<Tensor>&)>& op,
                        const std::vector<Tensor>& values, const std::vector<DType>& dtypes,
                        const std::vector<bool>& grads, const Tensor& seed, bool accumulate) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < values.size(); ++i) inputs.push_back(on(device, values[i], dtypes[i], grads[i]));
  std::vector<Tensor> results;
  for (int pass = 0; pass < (accumulate ? 2 : 1); ++pass) {
    Tensor out = op(inputs);
    float* dy = out.grad_ref()->buffer();
    const Tensor s = seed.to(device);
    if (device.is_cuda())
      cuda_backend().copy(dy, device, s.storage(), device, static_cast<size_t>(s.storage_bytes()));
    else
      std::copy(s.data(), s.data() + s.numel(), dy);
    Tape::run_backward();
    if (pass == 0) results.push_back(out);
  }
  for (const Tensor& t : inputs) results.push_back(t.requires_grad() ? t.grad() : Tensor());
  return results;
}

// The GPU result against the CPU one: output (dtype per the precision rule) and gradients.
void expect_match(const std::function<Tensor(const std::vector<Tensor>&)>& op, const std::vector<Tensor>& values,
                  const std::vector<DType>& dtypes, const std::vector<bool>& grads, bool accumulate = false) {
  Shape out_shape;
  {
    NoGradScope no_grad;
    out_shape = op(values).shape();
  }
  const Tensor seed = random_bf16_values(out_shape, 99);
  const std::vector<DType> all_f32(values.size(), DType::F32);
  const std::vector<Tensor> cpu = run(Device::cpu(), op, values, all_f32, grads, seed, accumulate);
  const std::vector<Tensor> gpu = run(kGpu, op, values, dtypes, grads, seed, accumulate);
  bool any_bf16 = false;
  for (DType d : dtypes) any_bf16 |= d == DType::BF16;
  ASSERT_EQ(gpu[0].device(), kGpu);
  EXPECT_EQ(gpu[0].dtype(), any_bf16 ? DType::BF16 : DType::F32);
  EXPECT_TRUE(all_close(gpu[0].to_vector(), widened(cpu[0]), any_bf16 ? kBf16Out : kExact)) << "forward";
  for (size_t i = 0; i < values.size(); ++i) {
    if (!grads[i]) continue;
    ASSERT_TRUE(gpu[1 + i].defined()) << "input " << i << " got no gradient";
    EXPECT_EQ(gpu[1 + i].dtype(), DType::F32);
    EXPECT_TRUE(all_close(gpu[1 + i].to_vector(), widened(cpu[1 + i]), kExact)) << "gradient of input " << i;
  }
}

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
  expect_match(linear_of, v, {DType::BF16, DType::F32, DType::F32}, {true, true, true}, /*accumulate=*/true);
}

TEST(CudaLinear, BackwardIsBitIdenticalRunToRun) {
  VDIT_REQUIRE_GPU();
  const std::vector<Tensor> v = {random_bf16_values({513, 130}, 10), random_bf16_values({64, 130}, 11),
                                 random_bf16_values({64}, 12)};
  const Tensor seed = random_bf16_values({513, 64}, 13);
  const std::vector<DType> dtypes = {DType::BF16, DType::F32, DType::F32};
  const std::vector<bool> grads = {true, true, true};
  const std::vector<Tensor> a = run(kGpu, linear_of, v, dtypes, grads, seed, false);
  const std::vector<Tensor> b = run(kGpu, linear_of, v, dtypes, grads, seed, false);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_EQ(testing::bit_pattern(a[i]), testing::bit_pattern(b[i])) << i;
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
    expect_match(matmul_of, v, {DType::BF16, DType::F32}, {true, true}, /*accumulate=*/true);
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
