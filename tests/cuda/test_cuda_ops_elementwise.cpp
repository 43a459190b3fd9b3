// CUDA element-wise ops (autograd/cuda/ops_elementwise.cu) against the CPU ops: binary ops
// under NumPy broadcasting with every dtype pairing (gradients reduced back to each input's
// shape), the unary activations, and the affine map; vectorised (multiple-of-8 runs) and
// scalar paths, odd sizes.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

using testing::bf16_exact;
using testing::expect_cuda_matches_cpu;
using testing::kBf16OutputTolerance;
using testing::kFp32Tolerance;
using testing::ParityCase;
using testing::short_name;

const std::vector<std::pair<DType, DType>> kDtypePairs = {
    {DType::F32, DType::F32}, {DType::BF16, DType::BF16}, {DType::BF16, DType::F32}, {DType::F32, DType::BF16}};

// Same shapes, a broadcast middle axis ([B, N, D] * [B, 1, D]), a broadcast row ([D]), a
// broadcast last axis, both inputs broadcast, a scalar; inner lengths of 64 and 24 take the
// 8-wide path, 513 and 7 the scalar one.
const std::vector<std::pair<Shape, Shape>> kShapePairs = {
    {{7}, {7}},          {{3, 130, 64}, {3, 1, 64}}, {{3, 130, 64}, {64}}, {{2, 7, 513}, {2, 1, 513}},
    {{2, 7, 513}, {2, 7, 1}}, {{5, 16, 1}, {1, 16, 24}}, {{1}, {130, 7}},      {{513}, {513}}};

struct NamedBinary {
  const char* name;
  Tensor (*fn)(const Tensor&, const Tensor&);
};

void check_binary(NamedBinary op) {
  uint64_t seed = 1;
  for (const auto& [a_shape, b_shape] : kShapePairs)
    for (const auto& [da, db] : kDtypePairs) {
      // The divisor stays away from zero so that the quotient's scale is set by the data.
      const bool divides = std::string(op.name) == "div";
      ParityCase c{{bf16_exact(a_shape, seed++), bf16_exact(b_shape, seed++, divides ? 0.5f : -1.0f, 1.5f)},
                   {da, db},
                   {},
                   da == DType::BF16 || db == DType::BF16 ? kBf16OutputTolerance : kFp32Tolerance,
                   kFp32Tolerance};  // gradients are fp32 products of the same bf16-exact values
      expect_cuda_matches_cpu(c, [&](const std::vector<Tensor>& in) { return op.fn(in[0], in[1]); },
                              std::string(op.name) + " " + to_string(a_shape) + short_name(da) + " " +
                                  to_string(b_shape) + short_name(db));
    }
}

TEST(CudaOpsElementwise, AddMatchesCpu) {
  VDIT_REQUIRE_GPU();
  check_binary({"add", add});
}
TEST(CudaOpsElementwise, SubMatchesCpu) {
  VDIT_REQUIRE_GPU();
  check_binary({"sub", sub});
}
TEST(CudaOpsElementwise, MulMatchesCpu) {
  VDIT_REQUIRE_GPU();
  check_binary({"mul", mul});
}
TEST(CudaOpsElementwise, DivMatchesCpu) {
  VDIT_REQUIRE_GPU();
  check_binary({"div", div});
}

TEST(CudaOpsElementwise, UnaryOpsMatchCpu) {
  VDIT_REQUIRE_GPU();
  const std::vector<std::pair<const char*, Tensor (*)(const Tensor&)>> ops = {
      {"square", square}, {"exp", exp}, {"log", log}, {"tanh", tanh}, {"silu", silu}, {"gelu_tanh", gelu_tanh}};
  uint64_t seed = 100;
  for (const auto& [name, fn] : ops)
    for (const Shape& shape : {Shape{1}, Shape{7}, Shape{130, 7}, Shape{3, 513}, Shape{4, 1536}})
      for (DType dtype : {DType::F32, DType::BF16}) {
        const bool positive = std::string(name) == "log";
        ParityCase c{{bf16_exact(shape, seed++, positive ? 0.1f : -3.0f, 3.0f)},
                     {dtype},
                     {},
                     dtype == DType::BF16 ? kBf16OutputTolerance : kFp32Tolerance,
                     kFp32Tolerance};  // derivatives in fp32 from the same bf16-exact x
        const auto fn_ptr = fn;
        expect_cuda_matches_cpu(c, [fn_ptr](const std::vector<Tensor>& in) { return fn_ptr(in[0]); },
                                std::string(name) + " " + to_string(shape) + short_name(dtype));
      }
}

TEST(CudaOpsElementwise, ScaleAndAddScalarMatchCpu) {
  VDIT_REQUIRE_GPU();
  for (const Shape& shape : {Shape{1}, Shape{7, 130}, Shape{2, 1536}})
    for (DType dtype : {DType::F32, DType::BF16}) {
      ParityCase c{{bf16_exact(shape, 7)}, {dtype}, {},
                   dtype == DType::BF16 ? kBf16OutputTolerance : kFp32Tolerance, kFp32Tolerance};
      expect_cuda_matches_cpu(c, [](const std::vector<Tensor>& in) { return scale(in[0], -0.37f); },
                              "scale " + to_string(shape) + short_name(dtype));
      expect_cuda_matches_cpu(c, [](const std::vector<Tensor>& in) { return add_scalar(in[0], 2.5f); },
                              "add_scalar " + to_string(shape) + short_name(dtype));
    }
}

TEST(CudaOpsElementwise, BroadcastGradientIsBitIdenticalRunToRun) {
  VDIT_REQUIRE_GPU();
  // [B, N, D] * [D]: the gradient of the [D] input sums over B N rows in a fixed order.
  const Tensor x = bf16_exact({4, 3001, 96}, 5).to(Device::cuda(0)).to_bf16();
  auto grad_of_row = [&] {
    Tensor row = bf16_exact({96}, 6).to(Device::cuda(0));
    row.set_requires_grad(true);
    sum_all(mul(x, row)).backward();
    return testing::bit_pattern(row.grad());
  };
  EXPECT_EQ(grad_of_row(), grad_of_row());
}

TEST(CudaOpsElementwise, MismatchedShapesAreAnError) {
  VDIT_REQUIRE_GPU();
  const Tensor a = Tensor::zeros({3, 4}, DType::BF16, Device::cuda(0));
  const Tensor b = Tensor::zeros({5}, DType::BF16, Device::cuda(0));
  EXPECT_THROW(add(a, b), Error);
}

}  // namespace
}  // namespace vdit
