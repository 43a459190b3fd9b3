#pragma once
// A window into every attention call, for diagnostics: it sees the queries, keys and values
// as the fused attention gets them (after the norms and RoPE) and may replace the output, e.g.
// with a sparsified attention. Models run without one unless a diagnosis passes it in.
#include "autograd/ops.h"

namespace vdit {

enum class AttentionKind { Self, Cross };

struct AttentionCall {
  int block = -1;
  AttentionKind kind = AttentionKind::Self;
  const Tensor& q;  // [B, Nq, H, hd]
  const Tensor& k;  // [B, Nk, H, hd]
  const Tensor& v;
  const AttentionOptions& options;  // temperature and scale as the attention uses them
};

class AttentionProbe {
 public:
  virtual ~AttentionProbe() = default;
  // Called before the attention runs; a defined result [B, Nq, H, hd] replaces its output.
  virtual Tensor observe(const AttentionCall& call) = 0;
};

}  // namespace vdit
