#pragma once
// A window into every attention call, for diagnostics: it sees the queries, keys and values
// as the fused attention gets them (after the norms and RoPE) and may replace the output, e.g.
// with a sparsified attention. Models run without one unless a diagnosis passes it in.
#include "autograd/ops.h"

namespace vdit {

// Self: video tokens attend to video tokens (Wan2.1). Cross: video tokens attend to text
// (Wan2.1). Joint: video and text rows in one attention (Mochi-1, CogVideoX-2b).
enum class AttentionKind { Self, Cross, Joint };

// Where the video and the text rows lie in a joint attention: the keys hold both ranges in the
// order the family concatenates them (Mochi: video then text; CogVideoX: text then video); the
// queries are the same rows, or only the video rows (Mochi's last block: Nq == video_count,
// starting at 0). Text rows that are padding have a key_mask of 0 (Mochi); CogVideoX masks none.
struct JointLayout {
  int64_t video_begin = 0, video_count = 0;
  int64_t text_begin = 0, text_count = 0;
};

struct AttentionCall {
  int block = -1;
  AttentionKind kind = AttentionKind::Self;
  const Tensor& q;  // [B, Nq, H, hd]
  const Tensor& k;  // [B, Nk, H, hd]
  const Tensor& v;
  const AttentionOptions& options;  // temperature, key mask and scale as the attention uses them
  JointLayout joint{};              // for AttentionKind::Joint only
};

class AttentionProbe {
 public:
  virtual ~AttentionProbe() = default;
  // Called before the attention runs; a defined result [B, Nq, H, hd] replaces its output.
  virtual Tensor observe(const AttentionCall& call) = 0;
};

}  // namespace vdit
