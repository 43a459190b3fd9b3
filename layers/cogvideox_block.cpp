#include "layers/cogvideox_block.h"

#include "layers/family_layers.h"
#include "layers/family_params.h"
#include "layers/wan_block.h"

namespace vdit {

namespace {

constexpr float kEpsQK = 1e-6f;

// The modulated streams concatenated text first, and the gates (video, text), each [B, 1, d].
struct Modulated {
  Tensor joint;
  Tensor gate, e_gate;
};

Modulated modulated(const CogVideoXModulation& m, const TokenStreams& s, const Tensor& conditioning) {
  const std::vector<Tensor> c = modulation_chunks(m.linear, conditioning, 6);
  return {concat({modulate(m.norm(s.text), c[3], c[4]), modulate(m.norm(s.video), c[0], c[1])}, 1), c[2], c[5]};
}

// Adds the gated text and video rows of `out` ([B, L + N, d], text first) to the streams.
TokenStreams gated_residual(const TokenStreams& s, const Tensor& out, const Modulated& m) {
  const std::vector<Tensor> rows = split(out, 1, {s.text.size(1), s.video.size(1)});
  return {add(s.video, mul(m.gate, rows[1])), add(s.text, mul(m.e_gate, rows[0]))};
}

}  // namespace

CogVideoXBlock build_cogvideox_block(const CogVideoXConfig& c, const ParameterMap& p, int index) {
  const std::string b = "transformer_blocks." + std::to_string(index), a = b + ".attn1.";
  auto norm = [&](const std::string& prefix, float eps) {
    return LayerNorm{parameter(p, prefix + ".weight"), parameter(p, prefix + ".bias"), eps};
  };
  CogVideoXBlock block;
  block.norm1 = {linear_from(p, b + ".norm1.linear"), norm(b + ".norm1.norm", c.norm_eps)};
  block.norm2 = {linear_from(p, b + ".norm2.linear"), norm(b + ".norm2.norm", c.norm_eps)};
  block.to_q = linear_from(p, a + "to_q");
  block.to_k = linear_from(p, a + "to_k");
  block.to_v = linear_from(p, a + "to_v");
  block.to_out = linear_from(p, a + "to_out.0");
  block.norm_q = norm(a + "norm_q", kEpsQK);
  block.norm_k = norm(a + "norm_k", kEpsQK);
  block.ff_up = linear_from(p, b + ".ff.net.0.proj");
  block.ff_down = linear_from(p, b + ".ff.net.2");
  block.log_temperature = optional_parameter(p, joint_temperature_key(index));
  block.num_heads = c.num_attention_heads;
  block.index = index;
  return block;
}

TokenStreams CogVideoXBlock::operator()(const TokenStreams& in, const Tensor& conditioning,
                                            AttentionProbe* probe) const {
  const Modulated m1 = modulated(norm1, in, conditioning);
  const Tensor q = norm_q(split_heads(to_q(m1.joint), num_heads));
  const Tensor k = norm_k(split_heads(to_k(m1.joint), num_heads));
  const int64_t text = in.text.size(1), tokens = in.video.size(1);
  const AttentionSite site{
      probe, index, AttentionKind::Joint,
      {.video_begin = text, .video_count = tokens, .text_begin = 0, .text_count = text}};
  const Tensor a = tempered_attention(q, k, split_heads(to_v(m1.joint), num_heads), {}, log_temperature, site);
  const TokenStreams s = gated_residual(in, to_out(merge_heads(a)), m1);
  const Modulated m2 = modulated(norm2, s, conditioning);
  return gated_residual(s, ff_down(gelu_tanh(ff_up(m2.joint))), m2);
}

}  // namespace vdit
