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
  options.temperature = tau.numel() == num_heads ? tau : add(Tensor::zeros({num_heads}), tau);
  return options;
}

Tensor AttentionLayer::self_attention(const Tensor& x, const RopeTables& rope) const {
  const Tensor qh = vdit::rope(split_heads(norm_q(q(x))), rope.cos, rope.sin);
  const Tensor kh = vdit::rope(split_heads(norm_k(k(x))), rope.cos, rope.sin);
  const Tensor a = attention(qh, kh, split_heads(v(x)), options());
  return o(reshape(a, x.shape()));
}

Tensor AttentionLayer::cross_attention(const Tensor& x, const Tensor& context) const {
  const Tensor a = attention(split_heads(norm_q(q(x))), split_heads(norm_k(k(context))),
                             split_heads(v(context)), options());
  return o(reshape(a, x.shape()));
}

}  // namespace vdit
