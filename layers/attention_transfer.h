#pragma once
// Attention-map transfer (issue 16; the first seed paper's editing experiment): the target's
// self-attention in a block takes the source's attention probabilities with its own values,
// softmax(q_src k_src^T) v_tgt. That is the ordinary attention of (source queries, source keys,
// target values), so it streams like any attention and never forms the N x N map. The source
// runs the block first under a recorder, the target then under the transfer probe.
#include "layers/attention_probe.h"

namespace vdit {

// Keeps the queries and keys of the self-attention it sees; the attention itself runs as usual.
class SelfAttentionRecorder : public AttentionProbe {
 public:
  Tensor observe(const AttentionCall& call) override;
  const Tensor& q() const { return q_; }
  const Tensor& k() const { return k_; }

 private:
  Tensor q_, k_;
};

// Replaces the self-attention it sees by attention(source q, source k, own v), with the call's
// own options (temperature, scale); cross-attention runs as usual.
class SelfAttentionTransfer : public AttentionProbe {
 public:
  explicit SelfAttentionTransfer(const SelfAttentionRecorder& source) : source_(source) {}
  Tensor observe(const AttentionCall& call) override;

 private:
  const SelfAttentionRecorder& source_;
};

}  // namespace vdit
