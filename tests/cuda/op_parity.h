#pragma once
// CUDA ops against their CPU twins (tests/cuda/test_cuda_ops_*.cpp): the same bf16-representable
// inputs go to the CPU op (fp32) and to the CUDA op (each input as fp32 or bf16 storage); the
// outputs are compared, then the gradient of every input of sum(out * w) for fixed random
// weights w. Comparisons are scale-relative (all_close): errors against max |reference|.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "tests/autograd_testing.h"
#include "tests/cuda/gpu_testing.h"

namespace vdit::testing {

// A bf16 output is the fp32 result rounded to 8 significant bits: each element is off by up to
// 2^-9 of itself, so at most 2^-9 of the largest; 2^-8 leaves room for the fp32 arithmetic.
constexpr double kBf16OutputTolerance = 1.0 / 256;
// Both sides compute in fp32 on identical inputs but in a different order (block sums against
// serial or double ones, expf against the CPU's polynomial exp): a few fp32 ulps of the scale.
constexpr double kFp32Tolerance = 2e-5;

// Uniform values in [lo, hi), rounded to bf16 so that a bf16 copy holds exactly the same values.
inline Tensor bf16_exact(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * static_cast<float>(rng.uniform());
  return t.to_bf16().to_f32();
}

inline Tensor on_cuda_as(const Tensor& host, DType dtype) {
  const Tensor device = host.to(Device::cuda(0));
  return dtype == DType::BF16 ? device.to_bf16() : device;
}

struct ParityCase {
  std::vector<Tensor> inputs;       // CPU fp32, bf16-exact
  std::vector<DType> dtypes;        // each input's storage on the device
  std::vector<bool> differentiate;  // which inputs require a gradient (all when empty)
  double forward_tolerance;
  double grad_tolerance;
  bool fp32_output = false;  // reductions write fp32 whatever their inputs
};

inline std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Runs `op` on both devices and expects the outputs and every input gradient to agree.
inline void expect_cuda_matches_cpu(const ParityCase& c, const std::function<Tensor(const std::vector<Tensor>&)>& op,
                                    const std::string& what) {
  SCOPED_TRACE(what);
  Tape::clear();  // nothing left over from a test that stopped half way
  const size_t n = c.inputs.size();
  auto wants_grad = [&](size_t i) { return c.differentiate.empty() || c.differentiate[i]; };

  std::vector<Tensor> cpu(n), gpu(n);
  for (size_t i = 0; i < n; ++i) {
    cpu[i] = c.inputs[i].clone();
    gpu[i] = on_cuda_as(c.inputs[i], c.dtypes[i]);
    if (wants_grad(i)) {
      cpu[i].set_requires_grad(true);
      gpu[i].set_requires_grad(true);
    }
  }
  const Tensor cpu_out = op(cpu);
  const Tensor weights = bf16_exact(cpu_out.shape(), 99);
  sum_all(mul(cpu_out, weights)).backward();
  const Tensor gpu_out = op(gpu);
  ASSERT_EQ(gpu_out.device(), Device::cuda(0));
  ASSERT_EQ(gpu_out.shape(), cpu_out.shape());
  bool any_bf16 = false;
  for (DType d : c.dtypes) any_bf16 = any_bf16 || d == DType::BF16;
  EXPECT_EQ(gpu_out.dtype(), any_bf16 && !c.fp32_output ? DType::BF16 : DType::F32) << "the README's precision table";
  EXPECT_TRUE(all_close(gpu_out.to_vector(), widen(cpu_out.to_vector()), c.forward_tolerance)) << "forward";
  sum_all(mul(gpu_out, weights.to(Device::cuda(0)))).backward();
  for (size_t i = 0; i < n; ++i) {
    if (!wants_grad(i)) continue;
    ASSERT_TRUE(cpu[i].grad().defined()) << "input " << i;
    ASSERT_TRUE(gpu[i].grad().defined()) << "input " << i << " got no gradient on the GPU";
    EXPECT_EQ(gpu[i].grad().device(), Device::cuda(0));
    EXPECT_EQ(gpu[i].grad().dtype(), DType::F32) << "gradients are fp32 on every device";
    EXPECT_TRUE(all_close(gpu[i].grad().to_vector(), widen(cpu[i].grad().to_vector()), c.grad_tolerance))
        << "gradient of input " << i;
  }
}

inline const char* short_name(DType d) { return d == DType::F32 ? "f32" : "bf16"; }

}  // namespace vdit::testing
