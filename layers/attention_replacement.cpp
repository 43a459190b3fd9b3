#include "layers/attention_replacement.h"

namespace vdit {

Tensor replaced_attention(const Tensor& v, AttentionReplacement mode) {
  if (mode == AttentionReplacement::Identity) return v;
  // The mean broadcast over the tokens by adding it to zeros of v's shape.
  return add(Tensor::zeros(v.shape(), DType::F32, v.device()), mean(v, {1}, true));
}

Tensor SelfAttentionReplacer::observe(const AttentionCall& call) {
  if (call.kind != AttentionKind::Self || !blocks_.count(call.block)) return {};
  return replaced_attention(call.v, mode_);
}

}  // namespace vdit
