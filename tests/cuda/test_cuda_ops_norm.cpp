// CUDA row ops (autograd/cuda/ops_norm.cu) against the CPU ops: softmax, LayerNorm (with and
// without weight and bias) and RMSNorm (with and without weight), forward and every gradient,
// fp32 and bf16 inputs, row widths from 1 to 1536; the weight gradients' fixed order.
#include <gtest/gtest.h>

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

// Row statistics are fp32 block sums on the device and double sums on the CPU; normalised
// values of order 1 then agree to a few fp32 ulps times sqrt(width): 1e-5 of the scale.
constexpr double kFp32RowTolerance = 1e-5;
// Norm gradients: the row terms as above, the weight and bias ones summed over up to ~1000
// rows in fp32 chunks against double on the CPU.
constexpr double kNormGradTolerance = 5e-5;
// softmax's backward reads the saved output, which is bf16 when the input is: its rounding
// (2^-9 relative) enters the gradient once, as in the forward.
constexpr double kSoftmaxBf16GradTolerance = 1.0 / 256;

const std::vector<Shape> kRowShapes = {{3, 1}, {5, 7}, {2, 3, 130}, {7, 513}, {4, 1536}};

TEST(CudaOpsNorm, SoftmaxMatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (const Shape& shape : kRowShapes)
    for (DType dtype : {DType::F32, DType::BF16}) {
      const bool bf16 = dtype == DType::BF16;
      ParityCase c{{bf16_exact(shape, 51, -4.0f, 4.0f)}, {dtype}, {},
                   bf16 ? kBf16OutputTolerance : kFp32RowTolerance,
                   bf16 ? kSoftmaxBf16GradTolerance : kFp32RowTolerance};
      expect_cuda_matches_cpu(c, [](const std::vector<Tensor>& in) { return softmax(in[0]); },
                              "softmax " + to_string(shape) + short_name(dtype));
    }
}

TEST(CudaOpsNorm, LayerNormMatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (const Shape& shape : kRowShapes) {
    const int64_t d = shape.back();
    for (DType dx : {DType::F32, DType::BF16})
      for (DType dw : {DType::F32, DType::BF16})
        for (int affine = 0; affine < 3; ++affine) {  // none, weight only, weight and bias
          // Inputs offset from zero, so that centring matters.
          std::vector<Tensor> inputs = {bf16_exact(shape, 52, -0.5f, 2.0f)};
          std::vector<DType> dtypes = {dx};
          if (affine >= 1) inputs.push_back(bf16_exact({d}, 53, 0.5f, 1.5f)), dtypes.push_back(dw);
          if (affine == 2) inputs.push_back(bf16_exact({d}, 54)), dtypes.push_back(dw);
          const bool bf16 = dx == DType::BF16 || (affine > 0 && dw == DType::BF16);
          ParityCase c{inputs, dtypes, {}, bf16 ? kBf16OutputTolerance : kFp32RowTolerance, kNormGradTolerance};
          expect_cuda_matches_cpu(
              c,
              [affine](const std::vector<Tensor>& in) {
                return layer_norm(in[0], affine >= 1 ? in[1] : Tensor(), affine == 2 ? in[2] : Tensor(), 1e-6f);
              },
              "layer_norm " + to_string(shape) + short_name(dx) + " affine " + std::to_string(affine) +
                  short_name(dw));
        }
  }
}

TEST(CudaOpsNorm, RmsNormMatchesCpu) {
  VDIT_REQUIRE_GPU();
  // Not width 1: there y = x / sqrt(x^2 + eps) is flat, and its gradient (about eps / x^3) is
  // all cancellation, which no scale-relative tolerance can judge.
  for (const Shape& shape : std::vector<Shape>(kRowShapes.begin() + 1, kRowShapes.end())) {
    const int64_t d = shape.back();
    for (DType dx : {DType::F32, DType::BF16})
      for (bool weighted : {false, true}) {
        std::vector<Tensor> inputs = {bf16_exact(shape, 55, -1.0f, 2.0f)};
        std::vector<DType> dtypes = {dx};
        if (weighted) inputs.push_back(bf16_exact({d}, 56, 0.5f, 1.5f)), dtypes.push_back(DType::F32);
        ParityCase c{inputs, dtypes, {}, dx == DType::BF16 ? kBf16OutputTolerance : kFp32RowTolerance,
                     kNormGradTolerance};
        expect_cuda_matches_cpu(
            c,
            [weighted](const std::vector<Tensor>& in) { return rms_norm(in[0], weighted ? in[1] : Tensor(), 1e-6f); },
            "rms_norm " + to_string(shape) + short_name(dx) + (weighted ? " weighted" : ""));
      }
  }
}

TEST(CudaOpsNorm, WeightGradientsAreBitIdenticalRunToRun) {
  VDIT_REQUIRE_GPU();
  const Tensor x = bf16_exact({4097, 96}, 57).to(Device::cuda(0)).to_bf16();
  const Tensor w = bf16_exact({4097, 96}, 58).to(Device::cuda(0));
  auto grads = [&] {
    Tensor weight = Tensor::full({96}, 1.0f).to(Device::cuda(0)), bias = Tensor::zeros({96}).to(Device::cuda(0));
    weight.set_requires_grad(true);
    bias.set_requires_grad(true);
    sum_all(mul(layer_norm(x, weight, bias, 1e-6f), w)).backward();
    std::vector<uint32_t> bits = testing::bit_pattern(weight.grad());
    const std::vector<uint32_t> b = testing::bit_pattern(bias.grad());
    bits.insert(bits.end(), b.begin(), b.end());
    return bits;
  };
  EXPECT_EQ(grads(), grads());
}

TEST(CudaOpsNorm, MismatchedWeightIsAnError) {
  VDIT_REQUIRE_GPU();
  const Tensor x = Tensor::zeros({3, 8}, DType::BF16, Device::cuda(0));
  EXPECT_THROW(layer_norm(x, Tensor::zeros({7}, DType::F32, Device::cuda(0)), Tensor(), 1e-6f), Error);
  EXPECT_THROW(rms_norm(x, Tensor::zeros({9}, DType::F32, Device::cuda(0)), 1e-6f), Error);
}

}  // namespace
}  // namespace vdit
