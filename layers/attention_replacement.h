#pragma once
// Main-attention maps (Wan2.1's self-attention; Mochi-1's and CogVideoX-2b's joint attention)
// replaced by the two extremes of entropy (issue 16, item 4; the second seed paper's
// perturbation analysis): the identity, where each query attends only to its own token
// (entropy 0), and the uniform map, where it attends to every key equally (entropy 1). Both are
// cheap in closed form, so neither forms a map: identity gives each query its own token's value,
// uniform gives every query the mean value over the keys.
//
// Joint attention (issue 17): the whole joint map is replaced, text rows included. Identity: each
// query row, video or text, takes its own row's value; where the queries are the video rows only
// (Mochi's last block) they take the video rows' values. Uniform: the mean of v over the keys the
// softmax sees, that is over the unmasked ones (Mochi leaves caption padding out), per batch row.
#include <set>

#include "layers/attention_probe.h"

namespace vdit {

enum class AttentionReplacement { Identity, Uniform };

// The output [B, Nq, H, hd] of the map `mode` in place of `call`'s attention, from its values
// v [B, Nk, H, hd] (and key mask, layout): as above. Any device; shapes that do not fit (queries
// neither the keys' rows nor a joint call's video rows) are an error naming the block.
Tensor replaced_attention(const AttentionCall& call, AttentionReplacement mode);

// Replaces the main attention of the chosen blocks; everything else runs as usual.
class AttentionReplacer : public AttentionProbe {
 public:
  AttentionReplacer(std::set<int> blocks, AttentionReplacement mode) : blocks_(std::move(blocks)), mode_(mode) {}
  Tensor observe(const AttentionCall& call) override;

 private:
  std::set<int> blocks_;
  AttentionReplacement mode_;
};

}  // namespace vdit
