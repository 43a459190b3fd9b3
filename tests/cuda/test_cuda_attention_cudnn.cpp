// cuDNN's fused attention (autograd/cuda/attention_cudnn.cpp, VDITKIT_CUDA_ATTENTION=cudnn)
// against our kernel (=own) and the CPU op at every size the issue names: output and the
// gradients of q, k, v; its backward is bit-identical run to run and runs by groups of heads
// under a workspace cap; `auto` runs our kernel whenever a temperature or a key mask asks for
// more than cuDNN serves.
//
// Tolerances, as for our kernel (test_cuda_attention_op.cpp): inputs and the output's weights
// (so dout) are bf16-exact; the differences are the bf16 roundings of the probabilities (forward,
// and for dV) and of dS (for dQ, dK), each 2^-9 relative, of the output, and on cuDNN's side of
// the gradients it writes in bf16 (another 2^-9): 1e-2 of the largest output value, 2e-2 of the
// largest value of each gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "autograd/cuda/attention_cudnn.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

using testing::all_close;
using testing::widen;

#define VDIT_REQUIRE_CUDNN()                                                                        \
  do {                                                                                              \
    if (!cuda::cudnn_attention_built()) GTEST_SKIP() << "built without cuDNN: cuDNN attention test skipped"; \
  } while (0)

constexpr double kForward = 1e-2, kGradient = 2e-2;

// Sets an environment variable for a scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old, had_ = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, saved_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string saved_;
  bool had_ = false;
};

struct Result {
  std::vector<float> out, dq, dk, dv;
};

struct Inputs {
  Tensor q, k, v;  // CPU, fp32 holding bf16-exact values
  AttentionOptions options;
};

Inputs make_inputs(int64_t tokens, int64_t head_dim) {
  const Shape shape{2, tokens, 3, head_dim};
  return {testing::bf16_exact(shape, 1, -2.0f, 2.0f), testing::bf16_exact(shape, 2, -2.0f, 2.0f),
          testing::bf16_exact(shape, 3), {}};
}

// Output and gradients of sum(attention(q, k, v) * w) on `device` (bf16 inputs on the GPU), with
// VDITKIT_CUDA_ATTENTION=kernel; the output alone, recording nothing, without `backward`.
Result run(const Inputs& in, Device device, const char* kernel, bool backward = true) {
  ScopedEnv choice("VDITKIT_CUDA_ATTENTION", kernel);
  Tape::clear();
  auto place = [&](const Tensor& t) {
    Tensor placed = device.is_cuda() ? testing::on_cuda_as(t, DType::BF16) : t.clone();
    placed.set_requires_grad(backward);
    return placed;
  };
  const Tensor q = place(in.q), k = place(in.k), v = place(in.v);
  AttentionOptions options = in.options;
  for (Tensor* t : {&options.temperature, &options.key_mask})
    if (t->defined()) *t = t->to(device);
  const Tensor out = attention(q, k, v, options);
  if (!backward) return {out.to_vector(), {}, {}, {}};
  sum_all(mul(out, testing::bf16_exact(out.shape(), 99).to(device))).backward();
  return {out.to_vector(), q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

void expect_close(const Result& actual, const Result& reference, const std::string& what) {
  EXPECT_TRUE(all_close(actual.out, widen(reference.out), kForward)) << what << ": output";
  EXPECT_TRUE(all_close(actual.dv, widen(reference.dv), kGradient)) << what << ": dv";
  if (max_abs(reference.dq) < 1e-4 * max_abs(reference.dv)) {
    // One key: dq and dk are zero in exact arithmetic (softmax over one key is constant) and both
    // sides return rounding noise (~1e-7), so they are judged against the scale of dv.
    EXPECT_LE(max_abs(actual.dq), kGradient * max_abs(reference.dv)) << what << ": dq";
    EXPECT_LE(max_abs(actual.dk), kGradient * max_abs(reference.dv)) << what << ": dk";
    return;
  }
  EXPECT_TRUE(all_close(actual.dq, widen(reference.dq), kGradient)) << what << ": dq";
  EXPECT_TRUE(all_close(actual.dk, widen(reference.dk), kGradient)) << what << ": dk";
}

void expect_identical(const Result& a, const Result& b, const std::string& what) {
  EXPECT_EQ(a.out, b.out) << what << ": output";
  EXPECT_EQ(a.dq, b.dq) << what << ": dq";
  EXPECT_EQ(a.dk, b.dk) << what << ": dk";
  EXPECT_EQ(a.dv, b.dv) << what << ": dv";
}

TEST(CudaAttentionCudnn, MatchesOurKernelAndTheCpuOp) {
  VDIT_REQUIRE_GPU();
  VDIT_REQUIRE_CUDNN();
  for (int64_t head_dim : {64, 128}) {
    for (int64_t tokens : {1, 7, 130, 513, 4096}) {
      SCOPED_TRACE(std::to_string(tokens) + " tokens, head_dim " + std::to_string(head_dim));
      const Inputs in = make_inputs(tokens, head_dim);
      const Result cudnn = run(in, Device::cuda(0), "cudnn");
      expect_close(cudnn, run(in, Device::cpu(), "auto"), "cuDNN against the CPU op");
      expect_close(cudnn, run(in, Device::cuda(0), "own"), "cuDNN against our kernel");
    }
  }
}

// The inference path: no gradient wanted, nothing recorded.
TEST(CudaAttentionCudnn, ForwardAloneMatchesTheCpuOp) {
  VDIT_REQUIRE_GPU();
  VDIT_REQUIRE_CUDNN();
  for (int64_t tokens : {1, 130, 4096}) {
    SCOPED_TRACE(std::to_string(tokens) + " tokens");
    const Inputs in = make_inputs(tokens, 128);
    EXPECT_TRUE(all_close(run(in, Device::cuda(0), "cudnn", false).out, widen(run(in, Device::cpu(), "auto", false).out),
                          kForward));
  }
}

TEST(CudaAttentionCudnn, GivenScaleAndCrossAttentionLengths) {
  VDIT_REQUIRE_GPU();
  VDIT_REQUIRE_CUDNN();
  Inputs in = make_inputs(130, 64);
  in.k = testing::bf16_exact({2, 513, 3, 64}, 4, -2.0f, 2.0f);
  in.v = testing::bf16_exact({2, 513, 3, 64}, 5);
  in.options.scale = 0.3f;
  expect_close(run(in, Device::cuda(0), "cudnn"), run(in, Device::cpu(), "auto"), "cuDNN against the CPU op");
}

TEST(CudaAttentionCudnn, BackwardIsBitIdenticalRunToRun) {
  VDIT_REQUIRE_GPU();
  VDIT_REQUIRE_CUDNN();
  const Inputs in = make_inputs(4096, 128);
  expect_identical(run(in, Device::cuda(0), "cudnn"), run(in, Device::cuda(0), "cudnn"), "two cuDNN runs");
}

// Under a small workspace cap the backward runs one batch item and head per launch (4096 tokens:
// 32 MiB of dP per head); under one too small for any head, auto runs our backward on cuDNN's
// forward where its workspace fits (same lse convention), and cudnn mode fails saying why.
TEST(CudaAttentionCudnn, WorkspaceCapRunsHeadGroupsOrOurBackward) {
  VDIT_REQUIRE_GPU();
  VDIT_REQUIRE_CUDNN();
  const Inputs in = make_inputs(4096, 64);
  const Result cpu = run(in, Device::cpu(), "auto");
  const cuda::AttentionShape shape{2, 4096, 4096, 3, 64};
  {
    ScopedEnv cap("VDITKIT_CUDNN_WORKSPACE_MIB", "40");
    const cuda::CudnnAttentionPlan plan = cuda::cudnn_attention_plan(shape, 0.0f, true, 0);
    ASSERT_TRUE(plan.available) << plan.why;
    EXPECT_EQ(plan.batch_per_launch, 1);
    EXPECT_EQ(plan.heads_per_launch, 1);
    EXPECT_LE(plan.workspace_bytes, int64_t{40} << 20);
    expect_close(run(in, Device::cuda(0), "cudnn"), cpu, "cuDNN by head groups against the CPU op");
  }
  {
    ScopedEnv cap("VDITKIT_CUDNN_WORKSPACE_MIB", "1");
    EXPECT_FALSE(cuda::cudnn_attention_plan(shape, 0.0f, true, 0).available);
    expect_close(run(in, Device::cuda(0), "auto"), cpu, "our backward on cuDNN's forward against the CPU op");
    EXPECT_THROW(run(in, Device::cuda(0), "cudnn"), Error);
  }
}

TEST(CudaAttentionCudnn, AutoRunsCudnnForThePlainCase) {
  VDIT_REQUIRE_GPU();
  VDIT_REQUIRE_CUDNN();
  const Inputs in = make_inputs(513, 128);
  EXPECT_EQ(run(in, Device::cuda(0), "auto").out, run(in, Device::cuda(0), "cudnn").out);
}

TEST(CudaAttentionCudnn, AutoRunsOurKernelForTemperatureOrKeyMask) {
  VDIT_REQUIRE_GPU();
  Inputs with_temperature = make_inputs(513, 64);
  with_temperature.options.temperature = Tensor::from_vector({3}, {0.75f, 1.25f, 1.75f});
  Inputs with_mask = make_inputs(513, 64);
  std::vector<float> mask(2 * 513, 1.0f);
  for (size_t j = 0; j < 513; j += 3) mask[513 + j] = 0.0f;
  with_mask.options.key_mask = Tensor::from_vector({2, 513}, mask);
  for (const Inputs* in : {&with_temperature, &with_mask}) {
    expect_identical(run(*in, Device::cuda(0), "auto"), run(*in, Device::cuda(0), "own"), "auto against own");
    EXPECT_THROW(run(*in, Device::cuda(0), "cudnn"), Error) << "cuDNN demanded for a case it does not serve";
  }
}

}  // namespace
}  // namespace vdit
