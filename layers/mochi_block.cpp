#include "layers/mochi_block.h"

#include "layers/family_layers.h"
#include "layers/family_params.h"

namespace vdit {

namespace {

constexpr float kEpsNorm = 1e-6f;  // the modulated and gating RMS norms
constexpr float kEpsQK = 1e-5f;    // the per-head query and key norms

Tensor rms(const Tensor& x) { return rms_norm(x, Tensor{}, kEpsNorm); }
// rms(x) * (1 + scale)
Tensor scaled(const Tensor& x, const Tensor& scale) { return mul(rms(x), add_scalar(scale, 1.0f)); }
// x + rms(y) * tanh(gate)
Tensor gated(const Tensor& x, const Tensor& y, const Tensor& gate) { return add(x, mul(rms(y), tanh(gate))); }

}  // namespace

Tensor SwiGLU::operator()(const Tensor& x) const {
  const std::vector<Tensor> h = chunk(proj(x), -1, 2);
  return out(mul(h[0], silu(h[1])));
}

MochiBlock build_mochi_block(const MochiConfig& c, const ParameterMap& p, int index) {
  const std::string b = "transformer_blocks." + std::to_string(index), a = b + ".attn1.";
  MochiBlock block;
  block.last = index == c.num_layers - 1;
  block.index = index;
  block.num_heads = c.num_attention_heads;
  block.norm1 = linear_from(p, b + ".norm1.linear");
  block.norm1_context = linear_from(p, b + (block.last ? ".norm1_context.linear_1" : ".norm1_context.linear"));
  block.to_q = unbiased_linear_from(p, a + "to_q");
  block.to_k = unbiased_linear_from(p, a + "to_k");
  block.to_v = unbiased_linear_from(p, a + "to_v");
  block.add_q_proj = unbiased_linear_from(p, a + "add_q_proj");
  block.add_k_proj = unbiased_linear_from(p, a + "add_k_proj");
  block.add_v_proj = unbiased_linear_from(p, a + "add_v_proj");
  block.to_out = linear_from(p, a + "to_out.0");
  block.norm_q = parameter(p, a + "norm_q.weight");
  block.norm_k = parameter(p, a + "norm_k.weight");
  block.norm_added_q = parameter(p, a + "norm_added_q.weight");
  block.norm_added_k = parameter(p, a + "norm_added_k.weight");
  block.log_temperature = optional_parameter(p, joint_temperature_key(index));
  block.ff = {unbiased_linear_from(p, b + ".ff.net.0.proj"), unbiased_linear_from(p, b + ".ff.net.2")};
  if (!block.last) {
    block.to_add_out = linear_from(p, a + "to_add_out");
    block.ff_context = {unbiased_linear_from(p, b + ".ff_context.net.0.proj"),
                        unbiased_linear_from(p, b + ".ff_context.net.2")};
  }
  return block;
}

TokenStreams MochiBlock::attend(const Tensor& nx, const Tensor& nc, const MochiBlockInputs& in,
                                AttentionProbe* probe) const {
  auto heads = [this](const Tensor& t) { return split_heads(t, num_heads); };
  auto normed = [&](const Linear& proj, const Tensor& weight, const Tensor& x) {
    return rms_norm(heads(proj(x)), weight, kEpsQK);
  };
  const int64_t tokens = nx.size(1), text = nc.size(1);
  const Tensor q = apply_mochi_rope(normed(to_q, norm_q, nx), in.rope);
  const Tensor k =
      concat({apply_mochi_rope(normed(to_k, norm_k, nx), in.rope), normed(add_k_proj, norm_added_k, nc)}, 1);
  const Tensor v = concat({heads(to_v(nx)), heads(add_v_proj(nc))}, 1);
  AttentionOptions options;
  options.key_mask = in.joint_mask;
  const AttentionSite site{
      probe, index, AttentionKind::Joint,
      {.video_begin = 0, .video_count = tokens, .text_begin = tokens, .text_count = text}};
  // The last block's text outputs are dropped, so only the visual rows query.
  const Tensor queries = last ? q : concat({q, normed(add_q_proj, norm_added_q, nc)}, 1);
  const Tensor a = merge_heads(tempered_attention(queries, k, v, options, log_temperature, site));
  if (last) return {to_out(a), Tensor{}};
  const std::vector<Tensor> rows = split(a, 1, {tokens, text});
  // Padding rows enter to_add_out as zeros, as in the release.
  return {to_out(rows[0]), to_add_out(in.text_mask.defined() ? mul(rows[1], in.text_mask) : rows[1])};
}

TokenStreams MochiBlock::operator()(const TokenStreams& in, const MochiBlockInputs& inputs,
                                    AttentionProbe* probe) const {
  // scale_msa, gate_msa, scale_mlp, gate_mlp, each [B, 1, d].
  const std::vector<Tensor> m = modulation_chunks(norm1, inputs.conditioning, 4);
  const std::vector<Tensor> e = modulation_chunks(norm1_context, inputs.conditioning, last ? 1 : 4);
  const TokenStreams attended = attend(scaled(in.video, m[0]), scaled(in.text, e[0]), inputs, probe);
  Tensor x = gated(in.video, attended.video, m[1]);
  x = gated(x, ff(scaled(x, m[2])), m[3]);
  if (last) return {x, Tensor{}};
  Tensor c = gated(in.text, attended.text, e[1]);
  return {x, gated(c, ff_context(scaled(c, e[2])), e[3])};
}

}  // namespace vdit
