#include "layers/wan_block.h"

namespace vdit {

Tensor modulate(const Tensor& normed, const Tensor& shift, const Tensor& scale) {
  return add(mul(normed, add_scalar(scale, 1.0f)), shift);
}

Tensor WanBlock::operator()(const Tensor& x_in, const Tensor& e0, const Tensor& context,
                            const RopeTables& rope) const {
  // m0..m5 = shift, scale, gate of self-attention; shift, scale, gate of the FFN; each [B, 1, d].
  const std::vector<Tensor> m = chunk(add(modulation, e0), 1, 6);
  Tensor x = add(x_in, mul(self_attn.self_attention(modulate(norm1(x_in), m[0], m[1]), rope), m[2]));
  x = add(x, cross_attn.cross_attention(norm3 ? (*norm3)(x) : x, context));
  return add(x, mul(ffn(modulate(norm2(x), m[3], m[4])), m[5]));
}

Tensor Head::operator()(const Tensor& x, const Tensor& e) const {
  const std::vector<Tensor> s = chunk(add(modulation, reshape(e, {e.size(0), 1, e.size(1)})), 1, 2);
  return head(modulate(norm(x), s[0], s[1]));
}

}  // namespace vdit
