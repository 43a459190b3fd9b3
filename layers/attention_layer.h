#pragma once
// Wan's attention layers (WAN21.md, step 4): projections, RMSNorm on queries and keys over the
// whole width, heads of hd = d / n, RoPE on self-attention only, fused streaming attention.
#include "layers/linear.h"
#include "layers/rope3d.h"
#include "layers/tempered_attention.h"

namespace vdit {

struct AttentionLayer {
  Linear q, k, v, o;
  RMSNorm norm_q, norm_k;
  int64_t num_heads = 1;
  // log tau, [num_heads] or [1] (one for all heads); undefined means tau = 1. Logits are
  // q k^T / (sqrt(hd) tau): tau > 1 flattens the attention, tau < 1 sharpens it.
  Tensor log_temperature;

  // x [B, N, d], tables for the N tokens of x's grid. A probe (diagnostics) sees the call as
  // that of block `block`.
  Tensor self_attention(const Tensor& x, const RopeTables& rope, AttentionProbe* probe = nullptr,
                        int block = -1) const;
  // x [B, N, d] queries, context [B, L, d] keys and values; no RoPE.
  Tensor cross_attention(const Tensor& x, const Tensor& context, AttentionProbe* probe = nullptr,
                         int block = -1) const;

 private:
  Tensor split_heads(const Tensor& t) const;  // [B, N, d] -> [B, N, n, hd]
  // The tempered attention, or what the probe puts in its place; merges heads.
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, AttentionProbe* probe, int block,
                AttentionKind kind, const Shape& merged) const;
};

}  // namespace vdit
