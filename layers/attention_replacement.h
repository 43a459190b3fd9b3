#pragma once
// Self-attention maps replaced by the two extremes of entropy (issue 16, item 4; the second seed
// paper's perturbation analysis): the identity, where each query attends only to its own token
// (entropy 0), and the uniform map, where it attends to every token equally (entropy 1). Both
// are cheap in closed form, so neither forms a map: identity gives each token its own value,
// uniform gives every token the mean value.
#include <set>

#include "layers/attention_probe.h"

namespace vdit {

enum class AttentionReplacement { Identity, Uniform };

// The attention output [B, N, H, hd] of the map `mode` over values v [B, N, H, hd]: v itself
// (identity), or the mean of v over the N tokens, the same for every query (uniform). Any device.
Tensor replaced_attention(const Tensor& v, AttentionReplacement mode);

// Replaces the self-attention of the chosen blocks; everything else runs as usual.
class SelfAttentionReplacer : public AttentionProbe {
 public:
  SelfAttentionReplacer(std::set<int> blocks, AttentionReplacement mode) : blocks_(std::move(blocks)), mode_(mode) {}
  Tensor observe(const AttentionCall& call) override;

 private:
  std::set<int> blocks_;
  AttentionReplacement mode_;
};

}  // namespace vdit
