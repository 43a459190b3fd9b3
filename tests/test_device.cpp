// Devices and dispatch, as seen from a build with or without CUDA: parsing, the errors an op
// gives for inputs on different devices, and host access to device storage refused by name.
// Device tensors are borrowed over a dummy address: nothing here dereferences them.
#include <gtest/gtest.h>

#include "autograd/cuda_backend.h"
#include "autograd/ops.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

Tensor fake_cuda_tensor(const Shape& shape) {
  static float dummy;
  return Tensor::borrow(shape, DType::F32, &dummy, nullptr, Device::cuda(0));
}

std::string error_of_call(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Device, ParsesCpuCudaAndOrdinals) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  EXPECT_EQ(to_string(Device::cuda(2)), "cuda:2");
  EXPECT_EQ(to_string(Device::cpu()), "cpu");
}

TEST(Device, RejectsMalformedNames) {
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:1234"})
    EXPECT_NE(error_of_call([&] { parse_device(bad); }).find("bad device"), std::string::npos) << bad;
}

TEST(Device, OpOnTwoDevicesNamesTheOpAndBoth) {
  const Tensor x = Tensor::zeros({2, 3});
  const Tensor w = fake_cuda_tensor({4, 3});
  const std::string message = error_of_call([&] { linear(x, w); });
  EXPECT_NE(message.find("linear"), std::string::npos) << message;
  EXPECT_NE(message.find("cpu and cuda:0"), std::string::npos) << message;
  EXPECT_NE(error_of_call([&] { add(w, x); }).find("add: inputs on different devices (cuda:0 and cpu)"),
            std::string::npos);
}

TEST(Device, HostDataOfADeviceTensorIsRefused) {
  const Tensor t = fake_cuda_tensor({5});
  const std::string message = error_of_call([&] { t.data(); });
  EXPECT_NE(message.find("on cuda:0"), std::string::npos) << message;
}

TEST(Device, CpuOnlyBuildSaysHowToGetCuda) {
  if (cuda_available()) GTEST_SKIP() << "built with CUDA and a device is visible";
  const Tensor w = fake_cuda_tensor({4, 3});
  const std::string message = error_of_call([&] { linear(fake_cuda_tensor({2, 3}), w); });
#if VDITKIT_CUDA
  EXPECT_FALSE(message.empty());
#else
  EXPECT_NE(message.find("-DVDITKIT_CUDA=ON"), std::string::npos) << message;
  EXPECT_NE(error_of_call([&] { Tensor::empty({2}, DType::F32, Device::cuda(0)); })
                .find("built without CUDA"),
            std::string::npos);
#endif
}

TEST(Device, CpuTensorsStayOnTheCpu) {
  const Tensor t = Tensor::zeros({3}, DType::BF16, Device::cpu());
  EXPECT_EQ(t.device(), Device::cpu());
  EXPECT_EQ(t.to(Device::cpu()).storage(), t.storage());  // no copy to where it already is
  EXPECT_EQ(reshape(Tensor::zeros({2, 3}), {6}).device(), Device::cpu());
}

}  // namespace
}  // namespace vdit
