#pragma once
// One Mochi-1 block (MOCHI.md, "Block i"): a visual stream of width d and a text stream of
// width dc, tanh-gated modulated RMS norms, joint attention over the visual rows and the real
// text rows, SwiGLU feed-forwards. The last block is "context_pre_only": its text stream ends.
#include "layers/linear.h"
#include "layers/mochi_config.h"
#include "layers/mochi_rope.h"
#include "layers/tempered_attention.h"
#include "layers/token_streams.h"

namespace vdit {

// out(a * silu(g)) with [a, g] = proj(x) split in halves, a first; no biases.
struct SwiGLU {
  Linear proj, out;
  Tensor operator()(const Tensor& x) const;
};

// What every block reads besides the streams (made once per forward by MochiModel::embed).
struct MochiBlockInputs {
  Tensor conditioning;  // silu(c) [B, d], c = time embedding + pooled caption
  MochiRope rope;
  // Where the caption has padding: [B, N + L], 1 for the visual rows and the real text rows,
  // and [B, L, 1], 1 for the real text rows. Undefined where every row is real.
  Tensor joint_mask;
  Tensor text_mask;
};

struct MochiBlock {
  Linear norm1, norm1_context;  // [4d] modulation; norm1_context [4dc], or [dc] in the last block
  Linear to_q, to_k, to_v, add_q_proj, add_k_proj, add_v_proj, to_out, to_add_out;
  Tensor norm_q, norm_k, norm_added_q, norm_added_k;  // per-head RMS weights [hd]
  SwiGLU ff, ff_context;
  Tensor log_temperature;  // optional, [num_heads] or [1] (tempered_attention.h); undefined: tau = 1
  int64_t num_heads = 1;
  bool last = false;  // context_pre_only: no to_add_out, no ff_context
  int index = -1;     // position in the model, as a probe is told

  // A probe sees the joint attention (keys: the visual rows, then the text rows, padding masked).
  TokenStreams operator()(const TokenStreams& in, const MochiBlockInputs& inputs,
                          AttentionProbe* probe = nullptr) const;

 private:
  // Joint attention: the visual output after to_out, and (not last) the text rows after
  // to_add_out, padding rows entering it as zeros.
  TokenStreams attend(const Tensor& nx, const Tensor& nc, const MochiBlockInputs& inputs, AttentionProbe* probe) const;
};

// Block `index` over the parameters under "transformer_blocks.<index>.".
MochiBlock build_mochi_block(const MochiConfig& config, const ParameterMap& params, int index);

}  // namespace vdit
