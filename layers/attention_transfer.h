#pragma once
// Attention-map transfer (issue 16; the first seed paper's editing experiment): in a block, the
// target's main attention (Wan2.1's self-attention; Mochi-1's and CogVideoX-2b's joint attention)
// takes the source's attention probabilities with its own values, softmax(q_src k_src^T) v_tgt.
// That is the ordinary attention of (source queries, source keys, target values), so it streams
// like any attention and never forms the N x N map. The source runs the block first under a
// recorder, the target then under the transfer probe.
//
// Joint attention (issue 17): the whole joint map moves, text rows included: every query row of
// the target, video or text, takes the source's probabilities over the source's joint keys, with
// the source's key mask (Mochi leaves caption padding out of its softmax, so the source's
// probabilities are over the source's real keys; a target value row that is padding in the
// target but real text in the source gets the source's mass, as any other row does). The video
// rows then see the source's video-to-video and video-to-text maps together, the text rows the
// source's text-to-all map. Mochi's last block has only its video rows as queries; source and
// target agree on that, as on every shape, which is checked.
#include "layers/attention_probe.h"

namespace vdit {

// Keeps the queries, keys, key mask and joint layout of the main attention (Self or Joint) it
// sees; the attention itself runs as usual. Cross-attention is not recorded.
class AttentionMapRecorder : public AttentionProbe {
 public:
  Tensor observe(const AttentionCall& call) override;
  const Tensor& q() const { return q_; }
  const Tensor& k() const { return k_; }
  const Tensor& key_mask() const { return key_mask_; }  // undefined where the call had none

 private:
  friend class AttentionMapTransfer;
  bool seen_ = false;
  AttentionKind kind_ = AttentionKind::Self;
  JointLayout joint_{};
  Tensor q_, k_, key_mask_;
};

// Replaces the main attention it sees by attention(source q, source k, own v) with the source's
// key mask and the call's own temperature and scale; cross-attention runs as usual. A source
// call of another kind, shape or layout is an error naming the block and both shapes.
class AttentionMapTransfer : public AttentionProbe {
 public:
  explicit AttentionMapTransfer(const AttentionMapRecorder& source) : source_(source) {}
  Tensor observe(const AttentionCall& call) override;

 private:
  const AttentionMapRecorder& source_;
};

}  // namespace vdit
