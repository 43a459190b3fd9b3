#include "layers/attention_transfer.h"

#include "autograd/check.h"

namespace vdit {

Tensor SelfAttentionRecorder::observe(const AttentionCall& call) {
  if (call.kind == AttentionKind::Self) {
    q_ = call.q;
    k_ = call.k;
  }
  return {};
}

Tensor SelfAttentionTransfer::observe(const AttentionCall& call) {
  if (call.kind != AttentionKind::Self) return {};
  VDIT_CHECK(source_.q().defined(), "attention transfer: block " << call.block << " has no recorded source self-attention");
  VDIT_CHECK(source_.q().shape() == call.q.shape() && source_.k().shape() == call.v.shape(),
             "attention transfer: block " << call.block << " source queries/keys " << to_string(source_.q().shape())
                                          << "/" << to_string(source_.k().shape()) << " do not match the target's "
                                          << to_string(call.q.shape()) << "/" << to_string(call.v.shape()));
  return attention(source_.q(), source_.k(), call.v, call.options);
}

}  // namespace vdit
