#pragma once
// The attention call every family's block makes (Wan2.1's self- and cross-attention, Mochi-1's
// and CogVideoX-2b's joint attention): its optional per-head temperature, and the probe that may
// watch the call and replace its output.
#include "layers/attention_probe.h"

namespace vdit {

// Where a block's attention call sits, as its probe is told.
struct AttentionSite {
  AttentionProbe* probe = nullptr;
  int block = -1;
  AttentionKind kind = AttentionKind::Self;
  JointLayout joint{};  // for AttentionKind::Joint only
};

// attention(q, k, v, options) [B, Nq, H, hd] with the logits divided per head by
// tau = exp(log_temperature) ([H] one per head, or [1] one for all; undefined: tau = 1), or
// what site.probe puts in its place. tau > 1 flattens the attention, tau < 1 sharpens it.
Tensor tempered_attention(const Tensor& q, const Tensor& k, const Tensor& v, AttentionOptions options,
                          const Tensor& log_temperature, const AttentionSite& site);

}  // namespace vdit
