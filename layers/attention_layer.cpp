#include "layers/attention_layer.h"

namespace vdit {

Tensor AttentionLayer::split_heads(const Tensor& t) const {
  return reshape(t, {t.size(0), t.size(1), num_heads, -1});
}

AttentionOptions AttentionLayer::options() const {
  AttentionOptions options;
  if (!log_temperature.defined()) return options;
  const Tensor tau = exp(log_temperature);
  // One temperature for the whole block is broadcast to every head.
  options.temperature = tau.numel() == num_heads ? tau : add(Tensor::zeros({num_heads}, DType::F32, tau.device()), tau);
  return options;
}

Tensor AttentionLayer::attend(const Tensor& qh, const Tensor& kh, const Tensor& vh, AttentionProbe* probe, int block,
                              AttentionKind kind, const Shape& merged) const {
  const AttentionOptions opts = options();
  Tensor a;
  if (probe) a = probe->observe({block, kind, qh, kh, vh, opts});
  if (!a.defined()) a = attention(qh, kh, vh, opts);
  return o(reshape(a, merged));
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
