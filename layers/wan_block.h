#pragma once
// One Wan transformer block and the output head (WAN21.md, steps 4 and 5).
#include <optional>

#include "layers/attention_layer.h"
#include "layers/vdit_config.h"

namespace vdit {

// Down(GELU_tanh(Up(x))).
struct FeedForward {
  Linear up, down;
  Tensor operator()(const Tensor& x) const;
};

struct WanBlock {
  Tensor modulation;  // [1, 6, d], added to e0
  LayerNorm norm1, norm2;  // no affine: before self-attention and before the FFN
  std::optional<LayerNorm> norm3;  // affine, before cross-attention; absent: identity
  AttentionLayer self_attn, cross_attn;
  FeedForward ffn;

  int index = -1;  // position in the model, as a probe is told

  // x [B, T, d], e0 [B, 6, d], context [B, text_len, d] (already embedded).
  Tensor operator()(const Tensor& x, const Tensor& e0, const Tensor& context,
                    const RopeTables& rope, AttentionProbe* probe = nullptr) const;
};

struct Head {
  Tensor modulation;  // [1, 2, d], added to e (not e0)
  LayerNorm norm;     // no affine
  Linear head;
  // x [B, T, d], e [B, d] -> [B, T, patch volume * out_dim]
  Tensor operator()(const Tensor& x, const Tensor& e) const;
};

// Block `index` of a model of `config` over the parameters stored under "blocks.<index>.".
WanBlock build_wan_block(const VDiTConfig& config, const ParameterMap& params, int index);

// LN(x) * (1 + scale) + shift, the adaptive norm both the blocks and the head use.
Tensor modulate(const Tensor& normed, const Tensor& shift, const Tensor& scale);

}  // namespace vdit
