#include "layers/wan_block.h"

#include "autograd/checkpoint.h"

namespace vdit {

namespace {

AttentionLayer attention_from(const ParameterMap& p, const std::string& prefix, const VDiTConfig& c) {
  AttentionLayer a;
  a.q = linear_from(p, prefix + ".q");
  a.k = linear_from(p, prefix + ".k");
  a.v = linear_from(p, prefix + ".v");
  a.o = linear_from(p, prefix + ".o");
  a.norm_q = {optional_parameter(p, prefix + ".norm_q.weight"), c.eps};
  a.norm_k = {optional_parameter(p, prefix + ".norm_k.weight"), c.eps};
  a.num_heads = c.num_heads;
  return a;
}

}  // namespace

WanBlock build_wan_block(const VDiTConfig& c, const ParameterMap& p, int index) {
  const std::string b = "blocks." + std::to_string(index);
  WanBlock block;
  block.index = index;
  block.modulation = parameter(p, b + ".modulation");
  block.norm1 = {Tensor{}, Tensor{}, c.eps};
  block.norm2 = {Tensor{}, Tensor{}, c.eps};
  if (c.cross_attn_norm)
    block.norm3 = LayerNorm{parameter(p, b + ".norm3.weight"), parameter(p, b + ".norm3.bias"), c.eps};
  block.self_attn = attention_from(p, b + ".self_attn", c);
  block.self_attn.log_temperature = optional_parameter(p, log_temperature_key(index, "self_attn"));
  block.cross_attn = attention_from(p, b + ".cross_attn", c);
  block.cross_attn.log_temperature = optional_parameter(p, log_temperature_key(index, "cross_attn"));
  block.ffn = {linear_from(p, b + ".ffn.0"), linear_from(p, b + ".ffn.2")};
  return block;
}

Tensor FeedForward::operator()(const Tensor& x) const {
  if (needs_grad({&x, &up.weight, &up.bias, &down.weight, &down.bias})) {
    // A frozen FFN on the GPU, in a graph for its input's gradient only (a frozen block after the
    // first trained one): its backward would keep the hidden activation, 6x the input's size
    // (587 MB of the 1.3B model at 32,760 tokens), so it keeps the input and reruns Up and GELU
    // in the backward pass (one more GEMM: the step's memory, issue 14, matters more there).
    if (x.is_cuda() && !needs_grad({&up.weight, &up.bias, &down.weight, &down.bias}) && !checkpoint_recomputing()) {
      const FeedForward ffn = *this;
      return checkpoint([ffn](const Tensor& in) { return ffn.down(gelu_tanh(ffn.up(in))); }, x);
    }
    return down(gelu_tanh(up(x)));
  }
  // Nothing to keep for a backward pass: the hidden activation, the largest tensor of a block
  // ([tokens, ffn_dim], 147 MB at 4096 tokens of the 1.3B model), is formed a chunk of rows at a time.
  // A GPU has the memory and wants the large GEMMs: there it is formed whole.
  constexpr int64_t kRows = 1024;
  const int64_t width = x.size(-1), rows = x.numel() / width, out_width = down.weight.size(0);
  if (rows <= kRows || x.is_cuda()) return down(gelu_tanh(up(x)));
  const Tensor flat = reshape(x, {rows, width});
  Shape out_shape = x.shape();
  out_shape.back() = out_width;
  Tensor out = Tensor::empty(out_shape);
  for (int64_t r = 0; r < rows; r += kRows) {
    const Tensor part = down(gelu_tanh(up(slice(flat, 0, r, std::min(rows, r + kRows)))));
    std::copy(part.data(), part.data() + part.numel(), out.data() + r * out_width);
  }
  return out;
}

Tensor modulate(const Tensor& normed, const Tensor& shift, const Tensor& scale) {
  return add(mul(normed, add_scalar(scale, 1.0f)), shift);
}

Tensor WanBlock::operator()(const Tensor& x_in, const Tensor& e0, const Tensor& context,
                            const RopeTables& rope, AttentionProbe* probe) const {
  // m0..m5 = shift, scale, gate of self-attention; shift, scale, gate of the FFN; each [B, 1, d].
  const std::vector<Tensor> m = chunk(add(modulation, e0), 1, 6);
  Tensor x = add(x_in, mul(self_attn.self_attention(modulate(norm1(x_in), m[0], m[1]), rope, probe, index), m[2]));
  x = add(x, cross_attn.cross_attention(norm3 ? (*norm3)(x) : x, context, probe, index));
  return add(x, mul(ffn(modulate(norm2(x), m[3], m[4])), m[5]));
}

Tensor Head::operator()(const Tensor& x, const Tensor& e) const {
  const std::vector<Tensor> s = chunk(add(modulation, reshape(e, {e.size(0), 1, e.size(1)})), 1, 2);
  return head(modulate(norm(x), s[0], s[1]));
}

}  // namespace vdit
