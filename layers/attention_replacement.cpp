#include "layers/attention_replacement.h"

#include "autograd/check.h"

namespace vdit {

namespace {

// The rows of v that are the queries' own tokens: all of them, or a joint call's video rows.
Tensor own_values(const AttentionCall& call) {
  const int64_t n_q = call.q.size(1), n_k = call.v.size(1);
  if (n_q == n_k) return call.v;
  const JointLayout& j = call.joint;
  VDIT_CHECK(call.kind == AttentionKind::Joint && n_q == j.video_count && j.video_begin + j.video_count <= n_k,
             "attention replacement: block " << call.block << " queries " << to_string(call.q.shape())
                                             << " are neither the rows of values " << to_string(call.v.shape())
                                             << " nor a joint attention's " << j.video_count << " video rows");
  return slice(call.v, 1, j.video_begin, j.video_begin + j.video_count);
}

// The mean of v [B, Nk, H, hd] over the keys whose mask is 1, [B, 1, H, hd].
Tensor mean_value(const AttentionCall& call) {
  const Tensor& v = call.v;
  const Tensor& mask = call.options.key_mask;
  if (!mask.defined()) return mean(v, {1}, true);
  VDIT_CHECK(mask.shape() == (Shape{v.size(0), v.size(1)}),
             "attention replacement: block " << call.block << " key mask " << to_string(mask.shape())
                                             << " does not fit values " << to_string(v.shape()));
  const Tensor weights = reshape(mask, {v.size(0), v.size(1), 1, 1});
  return div(sum(mul(v, weights), {1}, true), sum(weights, {1}, true));
}

}  // namespace

Tensor replaced_attention(const AttentionCall& call, AttentionReplacement mode) {
  VDIT_CHECK(call.q.ndim() == 4 && call.v.ndim() == 4 && call.q.size(0) == call.v.size(0),
             "attention replacement: block " << call.block << " queries " << to_string(call.q.shape())
                                             << " and values " << to_string(call.v.shape()) << " are not [B, N, H, hd]");
  if (mode == AttentionReplacement::Identity) return own_values(call);
  // The mean broadcast over the queries by adding it to zeros of the output's shape.
  const Shape out{call.q.size(0), call.q.size(1), call.v.size(2), call.v.size(3)};
  return add(Tensor::zeros(out, DType::F32, call.v.device()), mean_value(call));
}

Tensor AttentionReplacer::observe(const AttentionCall& call) {
  if (call.kind == AttentionKind::Cross || !blocks_.count(call.block)) return {};
  return replaced_attention(call, mode_);
}

}  // namespace vdit
