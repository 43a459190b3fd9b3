#include "diagnostics/self_attention_entropy.h"

#include <cmath>

#include "autograd/check.h"
#include "diagnostics/attention_call.h"
#include "diagnostics/joint_attention.h"

namespace vdit {

Tensor SelfAttentionEntropy::observe(const AttentionCall& call) {
  if (call.kind == AttentionKind::Cross) return {};
  VDIT_CHECK(call.block >= 0 && call.block < static_cast<int>(sum_.size()),
             "self-attention entropy: block " << call.block << " of a model with " << sum_.size() << " blocks");
  AttentionStatsOptions options;
  options.top_sinks = 0;
  options.max_pooled = 1;
  const float scale = attention_scale(call.options, call.q);
  const std::vector<float> tau = temperatures(call.options, call.q.size(2));
  const bool joint = call.kind == AttentionKind::Joint;
  for (int64_t row = 0; row < call.q.size(0); ++row) {
    // A joint call counts its video-to-video part (see the header).
    const JointParts parts = joint ? cut_joint_call(call, row) : JointParts{};
    const Tensor q = joint ? sample_heads(parts.video_q) : sample_heads(call.q, row);
    const Tensor k = joint ? sample_heads(parts.video_k) : sample_heads(call.k, row);
    for (const HeadStats& head : attention_statistics(q, k, scale, tau, nullptr, options)) {
      sum_[call.block] += head.entropy;
      ++count_[call.block];
    }
  }
  return {};
}

std::vector<double> SelfAttentionEntropy::mean_entropy() const {
  std::vector<double> mean(sum_.size());
  for (size_t b = 0; b < sum_.size(); ++b) mean[b] = count_[b] ? sum_[b] / static_cast<double>(count_[b]) : NAN;
  return mean;
}

}  // namespace vdit
