#pragma once
// One CogVideoX-2b block (COGVIDEOX.md, "Block i"): text and video tokens in one sequence, each
// stream with its own shift, scale and gate from a shared adaLN-zero layer, full attention with
// per-head LayerNormed queries and keys, a GELU feed-forward over both streams.
#include "layers/cogvideox_config.h"
#include "layers/linear.h"
#include "layers/tempered_attention.h"
#include "layers/token_streams.h"

namespace vdit {

// norm.linear(silu(emb)) gives [shift, scale, gate, e_shift, e_scale, e_gate]; one LayerNorm for both streams.
struct CogVideoXModulation {
  Linear linear;
  LayerNorm norm;
};

struct CogVideoXBlock {
  CogVideoXModulation norm1, norm2;
  Linear to_q, to_k, to_v, to_out;
  LayerNorm norm_q, norm_k;  // over each head's hd, eps 1e-6
  Linear ff_up, ff_down;
  Tensor log_temperature;  // optional, [num_heads] or [1] (tempered_attention.h); undefined: tau = 1
  int64_t num_heads = 1;
  int index = -1;  // position in the model, as a probe is told

  // conditioning = silu(emb) [B, time_embed_dim]. A probe sees the joint attention (text rows,
  // then video rows, nothing masked).
  TokenStreams operator()(const TokenStreams& in, const Tensor& conditioning,
                              AttentionProbe* probe = nullptr) const;
};

// Block `index` over the parameters under "transformer_blocks.<index>.".
CogVideoXBlock build_cogvideox_block(const CogVideoXConfig& config, const ParameterMap& params, int index);

}  // namespace vdit
