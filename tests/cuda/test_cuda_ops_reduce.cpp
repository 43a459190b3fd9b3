// CUDA reductions (autograd/cuda/ops_reduce.cu) against the CPU ops: sum and mean over every
// kind of axis set (inner, outer, middle, all; keepdim or not), mse_loss and its gradients into
// both inputs, and the fixed summation order (bit-identical run to run).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

using testing::bf16_exact;
using testing::expect_cuda_matches_cpu;
using testing::ParityCase;
using testing::short_name;

// Sums are fp32 on the device (per-chunk partials, then chunks in order) and double on the
// CPU: over up to ~10^5 terms of magnitude 1 the fp32 error stays near 1e-6 of the largest
// sum; 1e-5 leaves a margin. The output is fp32 for either input dtype (a reduction).
constexpr double kSumTolerance = 1e-5;
// The gradient is dy broadcast back: one product per element, the same on both sides.
constexpr double kGradTolerance = 1e-6;

std::string axes_name(const std::vector<int>& axes) {
  std::string s = "{";
  for (int a : axes) s += std::to_string(a) + ",";
  return s + "}";
}

TEST(CudaOpsReduce, SumAndMeanMatchCpu) {
  VDIT_REQUIRE_GPU();
  const std::vector<std::vector<int>> axis_sets = {{2}, {0}, {1}, {0, 1}, {0, 2}, {0, 1, 2}, {-1}, {}};
  for (const Shape& shape : {Shape{3, 130, 7}, Shape{2, 513, 64}, Shape{1, 7, 1}, Shape{5, 4001, 3}})
    for (const auto& axes : axis_sets)
      for (bool keepdim : {false, true})
        for (bool average : {false, true})
          for (DType dtype : {DType::F32, DType::BF16}) {
            ParityCase c{{bf16_exact(shape, 21)}, {dtype}, {}, kSumTolerance, kGradTolerance, true};
            expect_cuda_matches_cpu(
                c,
                [&](const std::vector<Tensor>& in) {
                  return average ? mean(in[0], axes, keepdim) : sum(in[0], axes, keepdim);
                },
                std::string(average ? "mean " : "sum ") + to_string(shape) + short_name(dtype) + axes_name(axes) +
                    (keepdim ? " keepdim" : ""));
          }
}

TEST(CudaOpsReduce, MseLossMatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (const Shape& shape : {Shape{1}, Shape{7}, Shape{2, 130, 7}, Shape{3, 513, 16}})
    for (DType dp : {DType::F32, DType::BF16})
      for (DType dt : {DType::F32, DType::BF16}) {
        const Tensor p = bf16_exact(shape, 31), t = bf16_exact(shape, 32);
        Tensor cp = p.clone(), ct = t.clone();
        cp.set_requires_grad(true);
        ct.set_requires_grad(true);
        const Tensor cpu_loss = mse_loss(cp, ct);
        cpu_loss.backward();
        Tensor gp = testing::on_cuda_as(p, dp), gt = testing::on_cuda_as(t, dt);
        gp.set_requires_grad(true);
        gt.set_requires_grad(true);
        const Tensor gpu_loss = mse_loss(gp, gt);
        EXPECT_EQ(gpu_loss.dtype(), DType::F32);
        EXPECT_EQ(gpu_loss.numel(), 1);
        // Both accumulate the squares in double and round the mean once to fp32: equal to
        // about one fp32 ulp.
        EXPECT_NEAR(gpu_loss.item(), cpu_loss.item(), 2e-7 * cpu_loss.item()) << to_string(shape);
        gpu_loss.backward();
        // 2 (p - t) / n dy: the same fp32 operations on the same values on both sides.
        const std::vector<float> ep = cp.grad().to_vector(), et = ct.grad().to_vector();
        EXPECT_TRUE(testing::all_close(gp.grad().to_vector(), testing::widen(ep), 1e-6)) << to_string(shape);
        EXPECT_TRUE(testing::all_close(gt.grad().to_vector(), testing::widen(et), 1e-6)) << to_string(shape);
      }
}

TEST(CudaOpsReduce, SumsAreBitIdenticalRunToRun) {
  VDIT_REQUIRE_GPU();
  const Tensor x = bf16_exact({7, 20001, 24}, 41).to(Device::cuda(0));
  for (const std::vector<int>& axes : {std::vector<int>{0, 1}, std::vector<int>{2}, std::vector<int>{0, 1, 2}})
    EXPECT_EQ(testing::bit_pattern(sum(x, axes)), testing::bit_pattern(sum(x, axes))) << axes_name(axes);
  const Tensor y = bf16_exact({7, 20001, 24}, 42).to(Device::cuda(0));
  EXPECT_EQ(testing::bit_pattern(mse_loss(x, y)), testing::bit_pattern(mse_loss(x, y)));
}

}  // namespace
}  // namespace vdit
