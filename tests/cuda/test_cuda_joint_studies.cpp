// The studies' probes on a joint attention call on the GPU (layers/attention_transfer.h,
// layers/attention_replacement.h, diagnostics/self_attention_entropy.h) against the same probes
// on the CPU (checked against float64 in test_joint_attention_studies.cpp): a Mochi-shaped call
// (video then text, padded captions that differ between source and target, and the last block's
// video-only queries) and a CogVideoX-shaped one (text then video, no mask). Inputs bf16-exact,
// bf16 on the GPU; tolerance 1e-2 of the largest value, the attention kernel's bf16
// probabilities as in test_cuda_attention_op.cpp, and 1e-2 on the entropy.
#include <gtest/gtest.h>

#include <array>
#include <functional>

#include "autograd/tape.h"
#include "diagnostics/self_attention_entropy.h"
#include "layers/attention_replacement.h"
#include "layers/attention_transfer.h"
#include "tests/cuda/op_parity.h"

namespace vdit {
namespace {

// [2, 32] keys: 24 video rows then 8 text rows, of which `real[r]` are real in batch row r.
Tensor mochi_mask(std::array<int, 2> real) {
  std::vector<float> m(64, 1.0f);
  for (int r = 0; r < 2; ++r) std::fill(m.begin() + 32 * r + 24 + real[r], m.begin() + 32 * (r + 1), 0.0f);
  return Tensor::from_vector({2, 32}, m);
}

struct JointCase {
  const char* name;
  JointLayout joint;
  int64_t queries;
  bool masked;
};

struct ProbeOutputs {
  std::vector<Tensor> out;  // transferred, identity, uniform
  double entropy = 0;
};

// The probes on one device: `on` moves a host tensor there (q, k, v as bf16 on the GPU).
ProbeOutputs run_probes(const JointCase& c, const std::function<Tensor(const Tensor&, bool)>& on) {
  const Tensor q_src = on(testing::bf16_exact({2, c.queries, 2, 64}, 1, -2.0f, 2.0f), true);
  const Tensor k_src = on(testing::bf16_exact({2, 32, 2, 64}, 2, -2.0f, 2.0f), true);
  const Tensor v_src = on(testing::bf16_exact({2, 32, 2, 64}, 3), true);
  const Tensor q = on(testing::bf16_exact({2, c.queries, 2, 64}, 4, -2.0f, 2.0f), true);
  const Tensor k = on(testing::bf16_exact({2, 32, 2, 64}, 5, -2.0f, 2.0f), true);
  const Tensor v = on(testing::bf16_exact({2, 32, 2, 64}, 6), true);
  AttentionOptions source_options, options;
  if (c.masked) {
    source_options.key_mask = on(mochi_mask({5, 8}), false);
    options.key_mask = on(mochi_mask({3, 6}), false);
  }
  AttentionMapRecorder recorder;
  recorder.observe({4, AttentionKind::Joint, q_src, k_src, v_src, source_options, c.joint});
  const AttentionCall call{4, AttentionKind::Joint, q, k, v, options, c.joint};
  ProbeOutputs p;
  p.out = {AttentionMapTransfer(recorder).observe(call), replaced_attention(call, AttentionReplacement::Identity),
           replaced_attention(call, AttentionReplacement::Uniform)};
  SelfAttentionEntropy entropy(5);
  entropy.observe(call);
  p.entropy = entropy.mean_entropy()[4];
  return p;
}

TEST(CudaJointStudies, TransferReplacementAndEntropyMatchTheCpu) {
  VDIT_REQUIRE_GPU();
  NoGradScope no_grad;
  const JointCase cases[] = {{"mochi", {0, 24, 24, 8}, 32, true},
                             {"mochi last block", {0, 24, 24, 8}, 24, true},
                             {"cogvideox", {8, 24, 0, 8}, 32, false}};
  for (const JointCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ProbeOutputs cpu = run_probes(c, [](const Tensor& t, bool) { return t; });
    const ProbeOutputs gpu = run_probes(c, [](const Tensor& t, bool bf16) {
      const Tensor d = t.to(Device::cuda(0));
      return bf16 ? d.to_bf16() : d;
    });
    const char* what[] = {"transfer", "identity", "uniform"};
    for (size_t i = 0; i < cpu.out.size(); ++i) {
      ASSERT_EQ(gpu.out[i].device(), Device::cuda(0)) << what[i];
      ASSERT_EQ(gpu.out[i].shape(), cpu.out[i].shape()) << what[i];
      EXPECT_TRUE(testing::all_close(gpu.out[i].to_vector(), testing::widen(cpu.out[i].to_vector()), 1e-2)) << what[i];
    }
    EXPECT_NEAR(gpu.entropy, cpu.entropy, 1e-2);
  }
}

}  // namespace
}  // namespace vdit
