#pragma once
// Wan's attention layers (WAN21.md, step 4): projections, RMSNorm on queries and keys over the
// whole width, heads of hd = d / n, RoPE on self-attention only, fused streaming attention.
#include "layers/linear.h"
#include "layers/rope3d.h"

namespace vdit {

struct AttentionLayer {
  Linear q, k, v, o;
  RMSNorm norm_q, norm_k;
  int64_t num_heads = 1;
  Tensor temperature;  // [num_heads]; undefined means 1 for every head

  // x [B, N, d], tables for the N tokens of x's grid.
  Tensor self_attention(const Tensor& x, const RopeTables& rope) const;
  // x [B, N, d] queries, context [B, L, d] keys and values; no RoPE, no temperature.
  Tensor cross_attention(const Tensor& x, const Tensor& context) const;

 private:
  Tensor split_heads(const Tensor& t) const;  // [B, N, d] -> [B, N, n, hd]
};

}  // namespace vdit
