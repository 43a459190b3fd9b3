// CUDA rotary embedding (autograd/cuda/ops_rope.cu) against the CPU op: forward and the
// gradient (the inverse rotation), fp32 and bf16 inputs, fp32 tables on the device, head dims
// 2 and 64, token counts 1, 7 and 130, with and without leading batch axes.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

using testing::bf16_exact;
using testing::expect_cuda_matches_cpu;
using testing::kBf16OutputTolerance;
using testing::ParityCase;
using testing::short_name;

// Each output is x0 c - x1 s: two products and a sum, fused or not by either compiler; a few
// fp32 ulps of the scale.
constexpr double kRotationTolerance = 1e-6;

// cos and sin of angles n theta^(j / pairs), as Wan's RoPE builds them (bf16-exact inputs are
// not needed: the tables are fp32 on both sides and never rounded).
std::vector<Tensor> tables(int64_t tokens, int64_t pairs) {
  Tensor cos = Tensor::empty({tokens, pairs}), sin = Tensor::empty({tokens, pairs});
  for (int64_t n = 0; n < tokens; ++n)
    for (int64_t j = 0; j < pairs; ++j) {
      const double angle = n * std::pow(10000.0, -static_cast<double>(j) / pairs);
      cos.data()[n * pairs + j] = static_cast<float>(std::cos(angle));
      sin.data()[n * pairs + j] = static_cast<float>(std::sin(angle));
    }
  return {cos, sin};
}

TEST(CudaOpsRope, MatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (const Shape& shape : {Shape{1, 2, 2}, Shape{2, 7, 3, 64}, Shape{130, 5, 2}, Shape{2, 2, 130, 2, 64}})
    for (DType dtype : {DType::F32, DType::BF16}) {
      const int64_t tokens = shape[shape.size() - 3], pairs = shape.back() / 2;
      const std::vector<Tensor> t = tables(tokens, pairs);
      ParityCase c{{bf16_exact(shape, 61), t[0], t[1]},
                   {dtype, DType::F32, DType::F32},
                   {true, false, false},
                   dtype == DType::BF16 ? kBf16OutputTolerance : kRotationTolerance,
                   kRotationTolerance};  // the gradient rotates fp32 dy on both sides
      expect_cuda_matches_cpu(c, [](const std::vector<Tensor>& in) { return rope(in[0], in[1], in[2]); },
                              "rope " + to_string(shape) + short_name(dtype));
    }
}

TEST(CudaOpsRope, BadTablesAreErrors) {
  VDIT_REQUIRE_GPU();
  const Tensor x = Tensor::zeros({7, 2, 8}, DType::BF16, Device::cuda(0));
  const Tensor good = Tensor::zeros({7, 4}, DType::F32, Device::cuda(0));
  const Tensor bad = Tensor::zeros({7, 3}, DType::F32, Device::cuda(0));
  EXPECT_THROW(rope(x, bad, good), Error);
  EXPECT_THROW(rope(Tensor::zeros({7, 2, 7}, DType::BF16, Device::cuda(0)), good, good), Error);
  EXPECT_THROW(rope(x, good.to(Device::cpu()), good), Error);  // tables on another device
}

}  // namespace
}  // namespace vdit
