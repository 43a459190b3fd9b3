// The CUDA runtime under the autograd: copies between host and device, dtype conversion on the
// device against the host's rounding, gradient accumulation, the backward seed, and the
// caching allocator's reuse (no cudaMalloc in a steady state).
#include <gtest/gtest.h>

#include <vector>

#include "autograd/cuda_backend.h"
#include "autograd/ops.h"
#include "tests/cuda/gpu_testing.h"

namespace vdit {
namespace {

std::vector<float> ramp(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = 0.37f * static_cast<float>(i) - 11.0f + 1e-3f * i * i;
  return v;
}

TEST(CudaRuntime, CopiesRoundTripBitExactly) {
  VDIT_REQUIRE_GPU();
  const Tensor host = Tensor::from_vector({3, 1001}, ramp(3003));
  const Tensor device = host.to(Device::cuda(0));
  EXPECT_EQ(device.device(), Device::cuda(0));
  EXPECT_EQ(device.dtype(), DType::F32);
  EXPECT_EQ(device.to(Device::cpu()).to_vector(), host.to_vector());
  const Tensor bf16 = host.to_bf16().to(Device::cuda(0));
  EXPECT_EQ(bf16.dtype(), DType::BF16);
  EXPECT_EQ(bf16.to_vector(), host.to_bf16().to_vector());
}

TEST(CudaRuntime, ConversionRoundsAsTheHostDoes) {
  VDIT_REQUIRE_GPU();
  // Ties and values near bf16 boundaries: the device's __float2bfloat16_rn must agree with
  // float_to_bf16 (round to nearest even) bit for bit.
  std::vector<float> v = ramp(4099);
  v.push_back(1.0f + 1.0f / 256.0f);  // a tie: rounds to even (1.0)
  v.push_back(-3.0e38f);
  v.push_back(1.0e-40f);  // subnormal
  const Tensor host = Tensor::from_vector({static_cast<int64_t>(v.size())}, v);
  const Tensor narrowed = host.to(Device::cuda(0)).to_bf16();
  EXPECT_EQ(narrowed.to_vector(), host.to_bf16().to_vector());
  EXPECT_EQ(narrowed.to_f32().dtype(), DType::F32);
  EXPECT_EQ(narrowed.to_f32().to_vector(), host.to_bf16().to_f32().to_vector());
}

TEST(CudaRuntime, ZerosAndCloneAreOnTheDevice) {
  VDIT_REQUIRE_GPU();
  const Tensor z = Tensor::zeros({513}, DType::BF16, Device::cuda(0));
  EXPECT_EQ(z.to_vector(), std::vector<float>(513, 0.0f));
  const Tensor a = Tensor::from_vector({4}, {1, 2, 3, 4}).to(Device::cuda(0));
  const Tensor c = a.clone();
  EXPECT_NE(c.storage(), a.storage());
  EXPECT_EQ(c.to_vector(), a.to_vector());
  EXPECT_FLOAT_EQ(Tensor::full({1}, 2.5f).to(Device::cuda(0)).item(), 2.5f);
}

TEST(CudaRuntime, BackwardSeedsAndReshapeCarriesGradients) {
  VDIT_REQUIRE_GPU();
  Tensor x = Tensor::from_vector({1, 1}, {3.0f}).to(Device::cuda(0));
  x.set_requires_grad(true);
  Tensor y = reshape(x, {1});
  y = reshape(y, {});
  y.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().device(), Device::cuda(0));
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>{1.0f});
}

TEST(CudaRuntime, AllocatorReusesBlocksInASteadyState) {
  VDIT_REQUIRE_GPU();
  const auto& backend = cuda_backend();
  auto step = [] {
    std::vector<Tensor> held;
    for (int64_t n : {1, 1000, 300000, 5000000, 1000}) held.push_back(Tensor::empty({n}, DType::BF16, Device::cuda(0)));
    held.push_back(Tensor::zeros({40000}, DType::F32, Device::cuda(0)));
  };
  step();
  const DeviceMemoryStats before = backend.memory_stats(0);
  for (int i = 0; i < 20; ++i) step();
  const DeviceMemoryStats after = backend.memory_stats(0);
  EXPECT_EQ(after.device_allocations, before.device_allocations);
  EXPECT_EQ(after.live, before.live);
  EXPECT_GE(after.peak, int64_t{5000000} * 2);
}

TEST(CudaRuntime, OutOfMemoryIsAnErrorWithTheAccount) {
  VDIT_REQUIRE_GPU();
  try {
    Tensor::empty({int64_t{1} << 50}, DType::F32, Device::cuda(0));
    FAIL() << "a 4 PiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA out of memory on cuda:0"), std::string::npos) << e.what();
  }
}

TEST(CudaRuntime, AMissingDeviceIsNamed) {
  VDIT_REQUIRE_GPU();
  try {
    Tensor::empty({4}, DType::F32, Device::cuda(99));
    FAIL() << "cuda:99 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:99"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vdit
