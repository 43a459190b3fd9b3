#include "layers/attention_transfer.h"

#include "autograd/check.h"

namespace vdit {

namespace {

std::string layout_text(const AttentionKind kind, const JointLayout& j) {
  if (kind != AttentionKind::Joint) return "self-attention";
  return "joint attention (video [" + std::to_string(j.video_begin) + ", +" + std::to_string(j.video_count) +
         "), text [" + std::to_string(j.text_begin) + ", +" + std::to_string(j.text_count) + "))";
}

bool same_layout(const JointLayout& a, const JointLayout& b) {
  return a.video_begin == b.video_begin && a.video_count == b.video_count && a.text_begin == b.text_begin &&
         a.text_count == b.text_count;
}

}  // namespace

Tensor AttentionMapRecorder::observe(const AttentionCall& call) {
  if (call.kind != AttentionKind::Cross) {
    seen_ = true;
    kind_ = call.kind;
    joint_ = call.joint;
    q_ = call.q;
    k_ = call.k;
    key_mask_ = call.options.key_mask;
  }
  return {};
}

Tensor AttentionMapTransfer::observe(const AttentionCall& call) {
  if (call.kind == AttentionKind::Cross) return {};
  const AttentionMapRecorder& s = source_;
  VDIT_CHECK(s.seen_, "attention transfer: block " << call.block << " has no recorded source attention");
  const bool joint = call.kind == AttentionKind::Joint;
  VDIT_CHECK(s.kind_ == call.kind && (!joint || same_layout(s.joint_, call.joint)),
             "attention transfer: block " << call.block << " source " << layout_text(s.kind_, s.joint_)
                                          << " does not match the target's " << layout_text(call.kind, call.joint));
  VDIT_CHECK(s.q_.shape() == call.q.shape() && s.k_.shape() == call.k.shape() && call.v.shape() == call.k.shape(),
             "attention transfer: block " << call.block << " source queries/keys " << to_string(s.q_.shape()) << "/"
                                          << to_string(s.k_.shape()) << " do not match the target's queries/keys/values "
                                          << to_string(call.q.shape()) << "/" << to_string(call.k.shape()) << "/"
                                          << to_string(call.v.shape()));
  const Shape mask{call.k.size(0), call.k.size(1)};
  VDIT_CHECK(!s.key_mask_.defined() || s.key_mask_.shape() == mask,
             "attention transfer: block " << call.block << " source key mask " << to_string(s.key_mask_.shape())
                                          << " is not " << to_string(mask));
  AttentionOptions options = call.options;
  options.key_mask = s.key_mask_;
  return attention(s.q_, s.k_, call.v, options);
}

}  // namespace vdit
