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

Tensor AttentionLayer::attend(const Tensor& q_in, const Tensor& kh, const Tensor& vh, AttentionProbe* probe, int block,
                              AttentionKind kind, const Shape& merged) const {
  // On a GPU the temperature divides the queries instead (q / tau per head, as PyTorch's
  // bench does; log tau gets its gradient through these ops), so that the attention has no
  // temperature and cuDNN's fused kernel, which takes none per head, can serve it. On the CPU
  // the fused temperature stays: rounding q / tau would move the CPU's numbers.
  const bool fold = log_temperature.defined() && q_in.is_cuda();
  const Tensor qh = fold ? mul(q_in, reshape(exp(scale(log_temperature, -1.0f)), {1, 1, -1, 1})) : q_in;
  const AttentionOptions opts = fold ? AttentionOptions() : options();
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
