// The optimizers and clipping with parameters on a CUDA device (autograd/cuda/ops_optim.cu,
// dispatched from optim/) against the same optimizers on the CPU: several AdamW and SGD
// updates from the same values and gradients, the global gradient norm and clipping, and
// optimizer.h5 saved from and loaded onto the device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/cuda_backend.h"
#include "autograd/random.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"
#include "optim/sgd.h"
#include "tests/autograd_testing.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

// The kernels repeat optim/'s fp32 operations in its order with explicit round-to-nearest
// intrinsics (nothing fused that the CPU does not fuse), so the updates should agree to the
// bit; 1e-6 of the scale is the brief's bound and still fails on any formula difference.
constexpr double kUpdateTolerance = 1e-6;

// A decayed matrix, an undecayed bias, and a matrix of an odd size.
std::vector<TrainableParameter> parameters_on(Device device) {
  Rng rng(7);
  std::vector<TrainableParameter> params;
  for (const auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
           {"blocks.0.ffn.0.weight", {33, 47}}, {"blocks.0.ffn.0.bias", {33}}, {"blocks.0.ffn.2.weight", {130, 513}}}) {
    Tensor value = rng.normal_tensor(shape, 0.5f).to(device);
    value.set_requires_grad(true);
    params.push_back({name, value});
  }
  return params;
}

// The same gradients on either device, of a scale that changes from step to step.
void set_gradients(const std::vector<TrainableParameter>& params, int step) {
  for (size_t i = 0; i < params.size(); ++i) {
    Rng rng(1000 * static_cast<uint64_t>(step) + i);
    const Tensor g = rng.normal_tensor(params[i].value.shape(), std::ldexp(1.0f, step % 3 - 1));
    params[i].value.zero_grad();
    float* dst = params[i].value.grad_ref()->buffer();
    const Device device = params[i].value.device();
    if (device.is_cuda())
      cuda_backend().copy(dst, device, g.data(), Device::cpu(), static_cast<size_t>(g.storage_bytes()));
    else
      std::copy_n(g.data(), g.numel(), dst);
  }
}

void expect_same_values(const std::vector<TrainableParameter>& gpu, const std::vector<TrainableParameter>& cpu,
                        const std::string& what) {
  for (size_t i = 0; i < cpu.size(); ++i) {
    const std::vector<float> expected = cpu[i].value.to_vector();
    EXPECT_TRUE(testing::all_close(gpu[i].value.to_vector(), {expected.begin(), expected.end()}, kUpdateTolerance))
        << what << ", " << cpu[i].name;
  }
}

template <class Make>
void expect_steps_match(Make make, const std::string& what) {
  auto cpu_params = parameters_on(Device::cpu()), gpu_params = parameters_on(Device::cuda(0));
  auto cpu = make(cpu_params);
  auto gpu = make(gpu_params);
  for (int step = 0; step < 5; ++step) {
    set_gradients(cpu_params, step);
    set_gradients(gpu_params, step);
    const double lr = 1e-2 / (1 + step);
    cpu->step(lr);
    gpu->step(lr);
    EXPECT_EQ(gpu_params[0].value.device(), Device::cuda(0));
    expect_same_values(gpu_params, cpu_params, what + " step " + std::to_string(step));
  }
}

TEST(CudaOpsOptim, AdamWMatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (double wd : {0.0, 0.1})
    expect_steps_match([wd](const auto& p) { return std::make_unique<AdamW>(p, AdamWOptions{.weight_decay = wd}); },
                       "adamw wd " + std::to_string(wd));
}

TEST(CudaOpsOptim, SgdMatchesCpu) {
  VDIT_REQUIRE_GPU();
  for (const SgdOptions& o : {SgdOptions{.momentum = 0.0}, SgdOptions{.momentum = 0.9, .weight_decay = 0.01},
                              SgdOptions{.momentum = 0.9, .weight_decay = 0.01, .nesterov = true}})
    expect_steps_match([o](const auto& p) { return std::make_unique<Sgd>(p, o); },
                       "sgd momentum " + std::to_string(o.momentum) + (o.nesterov ? " nesterov" : ""));
}

TEST(CudaOpsOptim, GradNormAndClippingMatchCpu) {
  VDIT_REQUIRE_GPU();
  auto cpu = parameters_on(Device::cpu()), gpu = parameters_on(Device::cuda(0));
  set_gradients(cpu, 1);
  set_gradients(gpu, 1);
  // Both sum the squares in double (in different fixed orders): equal to double rounding.
  const double expected = global_grad_norm(cpu);
  EXPECT_NEAR(global_grad_norm(gpu), expected, 1e-12 * expected);
  EXPECT_EQ(global_grad_norm(gpu), global_grad_norm(gpu)) << "fixed order: the same bits every time";
  const double max_norm = expected / 3;
  EXPECT_NEAR(clip_grad_norm(gpu, max_norm), clip_grad_norm(cpu, max_norm), 1e-12 * expected);
  for (size_t i = 0; i < cpu.size(); ++i) {
    // One fp32 product per element with the same fp32 factor (up to its last bit).
    const std::vector<float> e = cpu[i].value.grad().to_vector();
    EXPECT_TRUE(testing::all_close(gpu[i].value.grad().to_vector(), {e.begin(), e.end()}, 1e-7)) << cpu[i].name;
  }
  EXPECT_NEAR(global_grad_norm(gpu), max_norm, 1e-6 * max_norm);
}

TEST(CudaOpsOptim, MomentsLiveOnTheDeviceAndResumeFromAFile) {
  VDIT_REQUIRE_GPU();
  testing::ScratchDir dir;
  auto params = parameters_on(Device::cuda(0));
  AdamW first(params);
  for (int step = 0; step < 2; ++step) {
    set_gradients(params, step);
    first.step(1e-2);
  }
  first.save(dir / "optimizer.h5");
  // A second optimizer over copies of the same values resumes from the file.
  auto copies = parameters_on(Device::cuda(0));
  for (size_t i = 0; i < params.size(); ++i)
    cuda_backend().copy(copies[i].value.storage(), Device::cuda(0), params[i].value.storage(), Device::cuda(0),
                        static_cast<size_t>(params[i].value.storage_bytes()));
  AdamW second(copies);
  second.load(dir / "optimizer.h5");
  set_gradients(params, 2);
  set_gradients(copies, 2);
  first.step(1e-2);
  second.step(1e-2);
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(testing::bit_pattern(copies[i].value), testing::bit_pattern(params[i].value)) << params[i].name;
}

}  // namespace
}  // namespace vdit
