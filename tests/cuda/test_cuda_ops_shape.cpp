// CUDA movement ops (autograd/cuda/ops_shape.cu) against the CPU ops: permute, slice and concat
// and their backward (the strided copy added into the input's gradient). Copies are exact, so
// forward values must agree exactly and gradients to fp32 rounding of their sums.
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

// A copy moves values unchanged (a bf16 input stays bf16, its values bf16-exact): zero error.
constexpr double kExact = 0.0;
// The weighted sum's gradient reaching each input element is one product, the same on both.
constexpr double kGradTolerance = 1e-6;

TEST(CudaOpsShape, PermuteMatchesCpu) {
  VDIT_REQUIRE_GPU();
  const std::vector<std::vector<int>> perms = {{0, 2, 1, 3}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 3, 2}, {0, 1, 2, 3}};
  for (const Shape& shape : {Shape{2, 7, 3, 64}, Shape{1, 130, 5, 7}, Shape{3, 1, 513, 2}})
    for (const auto& axes : perms)
      for (DType dtype : {DType::F32, DType::BF16}) {
        ParityCase c{{bf16_exact(shape, 11)}, {dtype}, {}, kExact, kGradTolerance};
        expect_cuda_matches_cpu(c, [&](const std::vector<Tensor>& in) { return permute(in[0], axes); },
                                "permute " + to_string(shape) + short_name(dtype) + " axes " +
                                    std::to_string(axes[0]) + std::to_string(axes[1]) + std::to_string(axes[2]) +
                                    std::to_string(axes[3]));
      }
}

TEST(CudaOpsShape, SliceMatchesCpu) {
  VDIT_REQUIRE_GPU();
  struct Case {
    int axis;
    int64_t begin, end;
  };
  const Shape shape{3, 130, 7};
  for (const Case& s : {Case{0, 1, 3}, Case{1, 5, 118}, Case{2, 3, 4}, Case{-1, 0, 7}, Case{1, 129, 130}})
    for (DType dtype : {DType::F32, DType::BF16}) {
      ParityCase c{{bf16_exact(shape, 12)}, {dtype}, {}, kExact, kGradTolerance};
      expect_cuda_matches_cpu(c, [&](const std::vector<Tensor>& in) { return slice(in[0], s.axis, s.begin, s.end); },
                              "slice axis " + std::to_string(s.axis) + " [" + std::to_string(s.begin) + ", " +
                                  std::to_string(s.end) + ") " + short_name(dtype));
    }
}

TEST(CudaOpsShape, ConcatMatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (int axis : {0, 1, 2})
    for (DType second : {DType::F32, DType::BF16}) {
      Shape a{2, 7, 5}, b{2, 7, 5}, c3{2, 7, 5};
      a[axis] = 1;
      b[axis] = 130;
      c3[axis] = 3;
      ParityCase c{{bf16_exact(a, 13), bf16_exact(b, 14), bf16_exact(c3, 15)},
                   {DType::F32, second, DType::F32},
                   {true, false, true},  // an input without a gradient among ones with
                   kExact,
                   kGradTolerance};
      expect_cuda_matches_cpu(c, [&](const std::vector<Tensor>& in) { return concat(in, axis); },
                              "concat axis " + std::to_string(axis) + " middle " + short_name(second));
    }
}

TEST(CudaOpsShape, SplitAndChunkGoThroughSlice) {
  VDIT_REQUIRE_GPU();
  ParityCase c{{bf16_exact({4, 513}, 16)}, {DType::BF16}, {}, kExact, kGradTolerance};
  expect_cuda_matches_cpu(
      c, [](const std::vector<Tensor>& in) {
        const std::vector<Tensor> parts = chunk(in[0], 0, 2);
        return concat({parts[1], parts[0]}, 0);  // swapped, so a wrong offset shows
      },
      "chunk then concat");
}

TEST(CudaOpsShape, BadArgumentsAreErrors) {
  VDIT_REQUIRE_GPU();
  const Tensor x = Tensor::zeros({3, 4}, DType::BF16, Device::cuda(0));
  EXPECT_THROW(permute(x, {0, 0}), Error);
  EXPECT_THROW(permute(x, {0}), Error);
  EXPECT_THROW(slice(x, 1, 2, 5), Error);
  EXPECT_THROW(concat({x, Tensor::zeros({3, 5}, DType::BF16, Device::cuda(0))}, 0), Error);
  EXPECT_THROW(concat({x, Tensor::zeros({3, 4})}, 0), Error);  // a CPU part among CUDA ones
}

}  // namespace
}  // namespace vdit
