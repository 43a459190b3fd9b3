// Top-k attention. Per (batch, head, block of queries): one sgemm gives the logits [rows, N_k];
// each row keeps its most probable keys (selection, not a sort: O(N_k) expected), whose
// probabilities are renormalised among themselves and the rest set to zero; a second sgemm
// multiplies that sparse-in-content but dense-in-layout row block by V. Tasks write disjoint
// output rows, so the result does not depend on the thread count.
#include "diagnostics/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "autograd/blas.h"
#include "autograd/check.h"
#include "autograd/fast_math.h"
#include "autograd/parallel_errors.h"
#include "diagnostics/attention_call.h"
#include "diagnostics/diagnostics_cuda.h"
#include "diagnostics/joint_attention.h"

namespace vdit {

namespace {

constexpr int64_t kQueryBlock = 256;

// Replaces a row of logits s by the softmax over its `keep` largest entries and zeros
// elsewhere. Selection finds the keep-th largest logit t; every key above t is kept, and of
// those equal to t, the lowest-indexed ones fill the remaining places. `sorted` is scratch of
// the row's length.
void keep_top_softmax(float* s, int64_t n, int64_t keep, std::vector<float>& sorted) {
  std::copy(s, s + n, sorted.begin());
  std::nth_element(sorted.begin(), sorted.begin() + (keep - 1), sorted.end(), std::greater<>());
  const float t = sorted[keep - 1];
  int64_t ties_kept = keep;
  for (int64_t j = 0; j < n; ++j) ties_kept -= s[j] > t;
  const float m = row_max(s, n, -INFINITY);  // the most probable key is always kept
  double total = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const bool kept = s[j] > t || (s[j] == t && ties_kept-- > 0);
    s[j] = kept ? exp_approx(s[j] - m) : 0.0f;
    total += s[j];
  }
  const float inv = static_cast<float>(1.0 / total);
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

}  // namespace

int64_t kept_keys(double keep_fraction, int64_t n_k) {
  const auto keep = static_cast<int64_t>(std::ceil(keep_fraction * static_cast<double>(n_k) - 1e-9));
  return std::clamp<int64_t>(keep, 1, n_k);
}

Tensor SparseProbe::observe(const AttentionCall& call) {
  if (call.kind != kind_) return {};
  if (call.kind == AttentionKind::Joint) return sparse_joint_attention(call, keep_);  // over the unmasked keys
  if (kept_keys(keep_, call.k.size(1)) == call.k.size(1)) return {};
  return sparse_attention(call.q, call.k, call.v, attention_scale(call.options, call.q),
                          temperatures(call.options, call.q.size(2)), keep_);
}

Tensor sparse_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, float scale,
                        const std::vector<float>& temperature, double keep_fraction) {
  VDIT_CHECK(q_in.ndim() == 4 && k_in.ndim() == 4 && k_in.shape() == v_in.shape() &&
                 q_in.size(0) == k_in.size(0) && q_in.size(2) == k_in.size(2) && q_in.size(3) == k_in.size(3),
             "sparse attention takes q [B, N_q, H, hd] and k, v [B, N_k, H, hd]; got "
                 << to_string(q_in.shape()) << ", " << to_string(k_in.shape()) << ", " << to_string(v_in.shape()));
  VDIT_CHECK(k_in.size(1) >= 1, "sparse attention needs at least one key; got k " << to_string(k_in.shape()));
  VDIT_CHECK(keep_fraction > 0.0 && keep_fraction <= 1.0,
             "sparse attention keep fraction must be in (0, 1]; got " << keep_fraction);
  VDIT_CHECK(scale > 0.0f, "sparse attention scale must be positive; got " << scale);
  VDIT_CHECK(temperature.empty() || static_cast<int64_t>(temperature.size()) == q_in.size(2),
             "sparse attention: " << temperature.size() << " temperatures for " << q_in.size(2) << " heads");
#if VDITKIT_CUDA
  if (q_in.is_cuda() || k_in.is_cuda() || v_in.is_cuda())
    return sparse_attention_cuda(q_in, k_in, v_in, scale, temperature, kept_keys(keep_fraction, k_in.size(1)));
#endif
  const Tensor q = q_in.to_f32(), k = k_in.to_f32(), v = v_in.to_f32();
  const int64_t batch = q.size(0), n_q = q.size(1), n_k = k.size(1), heads = q.size(2), head_dim = q.size(3);
  const int64_t ld = heads * head_dim, keep = kept_keys(keep_fraction, n_k);
  const int64_t q_blocks = (n_q + kQueryBlock - 1) / kQueryBlock;
  Tensor out = Tensor::empty(q.shape());
  ParallelErrors errors;
#pragma omp parallel
  {
    std::vector<float> p, sorted;
    errors.run([&] {
      p.resize(std::min(kQueryBlock, n_q) * n_k);
      sorted.resize(n_k);
    });
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < batch * heads * q_blocks; ++task) errors.run([&] {
      const int64_t qb = task % q_blocks, h = task / q_blocks % heads, b = task / (q_blocks * heads);
      const int64_t q0 = qb * kQueryBlock, rows = std::min(kQueryBlock, n_q - q0);
      const float c = temperature.empty() ? scale : scale / temperature[h];
      const int64_t q_at = (b * n_q + q0) * ld + h * head_dim, kv_at = b * n_k * ld + h * head_dim;
      blas::sgemm(false, true, rows, n_k, head_dim, c, q.data() + q_at, ld, k.data() + kv_at, ld, 0.0f,
                  p.data(), n_k);
      for (int64_t i = 0; i < rows; ++i) keep_top_softmax(p.data() + i * n_k, n_k, keep, sorted);
      blas::sgemm(false, false, rows, head_dim, n_k, 1.0f, p.data(), n_k, v.data() + kv_at, ld, 0.0f,
                  out.data() + q_at, ld);
    });
  }
  errors.rethrow();
  return out;
}

}  // namespace vdit
