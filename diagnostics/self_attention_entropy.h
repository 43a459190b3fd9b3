#pragma once
// Each block's mean self-attention entropy over every call a run makes (every step, guidance
// pass, batch row and head), by the diagnostics' own measure (attention_stats.h: the entropy of
// a query's map normalised by log N_k, so 0 is one key and 1 is uniform), for setting beside
// perturbation results (issue 16, item 4). The attention itself runs as usual.
//
// A joint attention (Mochi-1, CogVideoX-2b) counts its video-to-video part, as diagnose reports
// it under self_attn (diagnostics/joint_attention.h): each video query's joint probabilities over
// the video keys, renormalised, with entropy over log of the video key count. So the number means
// the same in every family: how a video query spreads its attention over the video.
#include <vector>

#include "diagnostics/attention_stats.h"
#include "layers/attention_probe.h"

namespace vdit {

class SelfAttentionEntropy : public AttentionProbe {
 public:
  explicit SelfAttentionEntropy(int blocks) : sum_(blocks, 0.0), count_(blocks, 0) {}
  Tensor observe(const AttentionCall& call) override;
  // Per block, the mean over the heads of every call seen; NaN for a block never seen.
  std::vector<double> mean_entropy() const;

 private:
  std::vector<double> sum_;
  std::vector<int64_t> count_;
};

}  // namespace vdit
