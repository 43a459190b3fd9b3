#include "layers/attention_layer.h"

namespace vdit {

Tensor AttentionLayer::split_heads(const Tensor& t) const {
  return reshape(t, {t.size(0), t.size(1), num_heads, -1});
}

Tensor AttentionLayer::attend(const Tensor& qh, const Tensor& kh, const Tensor& vh, AttentionProbe* probe, int block,
                              AttentionKind kind, const Shape& merged) const {
  return o(reshape(tempered_attention(qh, kh, vh, {}, log_temperature, {probe, block, kind}), merged));
}

Tensor AttentionLayer::self_attention(const Tensor& x, const RopeTables& rope, AttentionProbe* probe, int block) const {
  const Tensor qh = vdit::rope(split_heads(norm_q(q(x))), rope.cos, rope.sin);
  const Tensor kh = vdit::rope(split_heads(norm_k(k(x))), rope.cos, rope.sin);
  return attend(qh, kh, split_heads(v(x)), probe, block, AttentionKind::Self, x.shape());
}

Tensor AttentionLayer::cross_attention(const Tensor& x, const Tensor& context, AttentionProbe* probe, int block) const {
  return attend(split_heads(norm_q(q(x))), split_heads(norm_k(k(context))), split_heads(v(context)), probe, block,
                AttentionKind::Cross, x.shape());
}

}  // namespace vdit
