// Fused scaled dot-product attention, streamed over key blocks with a running softmax (as
// FlashAttention does), so no [N, N] matrix exists beyond one [kQueryBlock, kKeyBlock] tile per
// thread. Forward keeps only the output and each query's log-sum-exp; backward recomputes the
// probabilities tile by tile from them.
//
// Per batch b and head h, with c = scale / temperature[h]:
//   s_ij = c q_i . k_j  (-inf where key j is masked),  p_ij = exp(s_ij - lse_i),  o_i = sum_j p_ij v_j
// Backward, with D_i = do_i . o_i:
//   dp_ij = do_i . v_j,  ds_ij = p_ij (dp_ij - D_i),
//   dq_i = c sum_j ds_ij k_j,  dk_j = c sum_i ds_ij q_i,  dv_j = sum_i p_ij do_i,
//   d temperature[h] = -(1 / temperature[h]) sum_ij ds_ij s_ij.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "autograd/blas.h"
#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/fast_math.h"
#include "autograd/grad_accumulate.h"
#include "autograd/parallel_errors.h"
#include "autograd/ops.h"

namespace vdit {

namespace {

constexpr int64_t kQueryBlock = 256;
constexpr int64_t kKeyBlock = 512;

// Where one (batch, head) slice of q/k/v lives: rows of head_dim floats, `ld` apart.
struct Geometry {
  int64_t batch, q_len, k_len, heads, head_dim;
  int64_t ld() const { return heads * head_dim; }
  int64_t q_offset(int64_t b, int64_t h) const { return b * q_len * ld() + h * head_dim; }
  int64_t k_offset(int64_t b, int64_t h) const { return b * k_len * ld() + h * head_dim; }
};

// One score tile: s = c Q_blk K_blk^T, with masked keys at -inf.
void score_tile(const Geometry& g, const float* q, const float* k, const float* mask, float c,
                int64_t rows, int64_t cols, float* s) {
  blas::sgemm(false, true, rows, cols, g.head_dim, c, q, g.ld(), k, g.ld(), 0.0f, s, cols);
  if (!mask) return;
  for (int64_t j = 0; j < cols; ++j)
    if (mask[j] == 0.0f)
      for (int64_t i = 0; i < rows; ++i) s[i * cols + j] = -INFINITY;
}

struct Inputs {
  const float *q, *k, *v, *mask, *temperature;
  float scale;
};

float head_factor(const Inputs& in, int64_t h) {
  return in.temperature ? in.scale / in.temperature[h] : in.scale;
}

void forward(const Geometry& g, const Inputs& in, float* out, float* lse) {
  const int64_t q_blocks = (g.q_len + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = g.batch * g.heads * q_blocks;
  ParallelErrors errors;
#pragma omp parallel
  {
    std::vector<float> s, acc, row_max, row_sum;  // row_max and row_sum: running, per query
    errors.run([&] {
      s.resize(kQueryBlock * kKeyBlock);
      acc.resize(kQueryBlock * g.head_dim);
      row_max.resize(kQueryBlock);
      row_sum.resize(kQueryBlock);
    });
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) errors.run([&] {
      const int64_t qb = task % q_blocks, h = (task / q_blocks) % g.heads, b = task / (q_blocks * g.heads);
      const int64_t q0 = qb * kQueryBlock, rows = std::min(kQueryBlock, g.q_len - q0);
      const float c = head_factor(in, h);
      const float* qp = in.q + g.q_offset(b, h) + q0 * g.ld();
      std::fill(row_max.begin(), row_max.end(), -INFINITY);
      std::fill(row_sum.begin(), row_sum.end(), 0.0f);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < g.k_len; k0 += kKeyBlock) {
        const int64_t cols = std::min(kKeyBlock, g.k_len - k0);
        const float* mask = in.mask ? in.mask + b * g.k_len + k0 : nullptr;
        score_tile(g, qp, in.k + g.k_offset(b, h) + k0 * g.ld(), mask, c, rows, cols, s.data());
        for (int64_t i = 0; i < rows; ++i) {
          float* si = s.data() + i * cols;
          const float m = vdit::row_max(si, cols, row_max[i]);
          if (m == -INFINITY) {  // every key so far masked: nothing to add
            std::fill(si, si + cols, 0.0f);
            continue;
          }
          const float correction = exp_approx(row_max[i] - m);
          for (int64_t j = 0; j < cols; ++j) si[j] = exp_approx(si[j] - m);
          row_sum[i] = row_sum[i] * correction + vdit::row_sum(si, cols);
          row_max[i] = m;
          float* ai = acc.data() + i * g.head_dim;
          for (int64_t d = 0; d < g.head_dim; ++d) ai[d] *= correction;
        }
        blas::sgemm(false, false, rows, g.head_dim, cols, 1.0f, s.data(), cols,
                    in.v + g.k_offset(b, h) + k0 * g.ld(), g.ld(), 1.0f, acc.data(), g.head_dim);
      }
      float* op = out + g.q_offset(b, h) + q0 * g.ld();
      float* lp = lse + (b * g.heads + h) * g.q_len + q0;
      for (int64_t i = 0; i < rows; ++i) {
        const float inv = row_sum[i] > 0.0f ? 1.0f / row_sum[i] : 0.0f;  // fully masked: 0
        for (int64_t d = 0; d < g.head_dim; ++d) op[i * g.ld() + d] = acc[i * g.head_dim + d] * inv;
        lp[i] = row_sum[i] > 0.0f ? row_max[i] + std::log(row_sum[i]) : -INFINITY;
      }
    });
  }
  errors.rethrow();
}

struct Grads {
  float *dq, *dk, *dv, *dtemperature;  // null where no gradient is wanted
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Backward is cut into tasks that each own what they write, so no two threads add into one
// float and the result has the same bits on any number of threads. Task (b, h, group) owns the
// rows of dk and dv of one group of keys, and writes that group's share of dq (its sum over
// the group's keys) into a partial of its own; the partials are then added into dq in group
// order. The groups depend on k_len alone: at most kMaxKeyGroups of them, each a multiple of
// kKeyGranule keys, so that batch x heads x groups tasks keep 16+ cores busy (the 1.3B model
// has 12 heads) while no group becomes a sliver of keys.
constexpr int64_t kMaxKeyGroups = 8;
constexpr int64_t kKeyGranule = 64;
constexpr int64_t kMinGroupKeys = 128;

struct KeyGroups {
  int64_t keys, count;  // keys per group (the last may have fewer), number of groups
  explicit KeyGroups(int64_t k_len)
      : keys(std::max(kMinGroupKeys, ceil_div(ceil_div(k_len, kMaxKeyGroups), kKeyGranule) * kKeyGranule)),
        count(ceil_div(k_len, keys)) {}
};

// Per-thread scratch of one backward task.
struct BackwardScratch {
  std::vector<float> p, dp, delta, ds_s;
  BackwardScratch(int64_t q_len)
      : p(kQueryBlock * kKeyBlock), dp(kQueryBlock * kKeyBlock), delta(q_len), ds_s(kKeyBlock) {}
};

// Gradients through keys [k_begin, k_end) of batch b, head h: adds into their rows of dk and dv,
// writes their share of dq into dq_part ([q_len, head_dim], overwritten), and returns their
// sum of ds * s for the temperature's gradient.
double key_group_backward(const Geometry& g, const Inputs& in, const float* out, const float* lse,
                          const float* dout, const Grads& grads, int64_t b, int64_t h, int64_t k_begin,
                          int64_t k_end, float* dq_part, BackwardScratch& scratch) {
  const bool want_temperature = grads.dtemperature != nullptr;
  const float c = head_factor(in, h);
  const int64_t qo = g.q_offset(b, h), ko = g.k_offset(b, h);
  const float* lse_bh = lse + (b * g.heads + h) * g.q_len;
  float *p = scratch.p.data(), *dp = scratch.dp.data(), *delta = scratch.delta.data();
  for (int64_t i = 0; i < g.q_len; ++i) {
    float s = 0.0f;
    for (int64_t d = 0; d < g.head_dim; ++d) s += dout[qo + i * g.ld() + d] * out[qo + i * g.ld() + d];
    delta[i] = s;
  }
  double ds_dot_s = 0.0;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kKeyBlock) {
    const int64_t cols = std::min(kKeyBlock, k_end - k0);
    const float* mask = in.mask ? in.mask + b * g.k_len + k0 : nullptr;
    const int64_t kv = ko + k0 * g.ld();
    for (int64_t q0 = 0; q0 < g.q_len; q0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, g.q_len - q0);
      const int64_t qv = qo + q0 * g.ld();
      score_tile(g, in.q + qv, in.k + kv, mask, c, rows, cols, p);
      // dp = dO V^T before p is overwritten; then p = exp(s - lse), ds (in dp) = p (dp - D).
      blas::sgemm(false, true, rows, cols, g.head_dim, 1.0f, dout + qv, g.ld(), in.v + kv, g.ld(), 0.0f,
                  dp, cols);
      for (int64_t i = 0; i < rows; ++i) {
        const float l = lse_bh[q0 + i], di = delta[q0 + i];
        float* pi = p + i * cols;
        float* dpi = dp + i * cols;
        if (l == -INFINITY) {  // a query whose keys are all masked: no mass, no gradient
          std::fill(pi, pi + cols, 0.0f);
          std::fill(dpi, dpi + cols, 0.0f);
          continue;
        }
        // The temperature's gradient sums ds * s over unmasked keys (masked: p = ds = 0,
        // s = -inf); the products are formed only when it is wanted.
        float* ds_s = scratch.ds_s.data();
        for (int64_t j = 0; j < cols; ++j) {
          const float pij = exp_approx(pi[j] - l);
          const float ds = pij * (dpi[j] - di);
          if (want_temperature) ds_s[j] = pij > 0.0f ? ds * pi[j] : 0.0f;
          pi[j] = pij;
          dpi[j] = ds;
        }
        if (want_temperature) ds_dot_s += vdit::row_sum(ds_s, cols);
      }
      if (grads.dv)
        blas::sgemm(true, false, cols, g.head_dim, rows, 1.0f, p, cols, dout + qv, g.ld(), 1.0f,
                    grads.dv + kv, g.ld());
      if (grads.dq)  // the group's first key block starts the partial
        blas::sgemm(false, false, rows, g.head_dim, cols, c, dp, cols, in.k + kv, g.ld(),
                    k0 == k_begin ? 0.0f : 1.0f, dq_part + q0 * g.head_dim, g.head_dim);
      if (grads.dk)
        blas::sgemm(true, false, cols, g.head_dim, rows, c, dp, cols, in.q + qv, g.ld(), 1.0f,
                    grads.dk + kv, g.ld());
    }
  }
  return ds_dot_s;
}

// The dq partials exist for one wave of (b, h) pairs at a time, just enough pairs to give
// every thread a task: their memory is about threads x q_len x head_dim floats, whatever the
// batch and head count. The wave size changes no result, only how much runs at once.
void backward(const Geometry& g, const Inputs& in, const float* out, const float* lse,
              const float* dout, const Grads& grads) {
  if (g.k_len == 0) return;  // no keys: the output is zeros whatever q, k and v are
  const KeyGroups groups(g.k_len);
  const int64_t pairs = g.batch * g.heads;
  const int64_t wave = std::min(pairs, ceil_div(omp_get_max_threads(), groups.count));
  const int64_t part_size = g.q_len * g.head_dim;
  Tensor dq_parts = grads.dq ? Tensor::empty({wave, groups.count, g.q_len, g.head_dim}) : Tensor();
  std::vector<double> temperature_terms(pairs * groups.count, 0.0);  // sum ds * s per task
  ParallelErrors errors;
#pragma omp parallel
  {
    std::unique_ptr<BackwardScratch> scratch;
    errors.run([&] { scratch = std::make_unique<BackwardScratch>(g.q_len); });
    for (int64_t first = 0; first < pairs; first += wave) {
      const int64_t in_wave = std::min(wave, pairs - first);
#pragma omp for schedule(dynamic)
      for (int64_t task = 0; task < in_wave * groups.count; ++task) errors.run([&] {
        const int64_t pair = first + task / groups.count, group = task % groups.count;
        const int64_t k_begin = group * groups.keys, k_end = std::min(g.k_len, k_begin + groups.keys);
        float* dq_part = grads.dq ? dq_parts.data() + task * part_size : nullptr;
        temperature_terms[pair * groups.count + group] = key_group_backward(
            g, in, out, lse, dout, grads, pair / g.heads, pair % g.heads, k_begin, k_end, dq_part, *scratch);
      });
      // dq += the wave's partials, in group order. Both loops end in a barrier: the partials
      // are complete before they are added, and added before the next wave overwrites them.
      if (grads.dq) {
#pragma omp for schedule(static)
        for (int64_t row = 0; row < in_wave * g.q_len; ++row) {
          const int64_t pair = first + row / g.q_len, i = row % g.q_len;
          const float* part = dq_parts.data() + (row / g.q_len) * groups.count * part_size + i * g.head_dim;
          float* dq = grads.dq + g.q_offset(pair / g.heads, pair % g.heads) + i * g.ld();
          for (int64_t d = 0; d < g.head_dim; ++d) {
            float sum = part[d];
            for (int64_t group = 1; group < groups.count; ++group) sum += part[group * part_size + d];
            dq[d] += sum;
          }
        }
      }
    }
  }
  errors.rethrow();
  if (grads.dtemperature)  // summed over groups and the batch in a fixed order
    for (int64_t pair = 0; pair < pairs; ++pair) {
      const int64_t h = pair % g.heads;
      double total = 0.0;
      for (int64_t group = 0; group < groups.count; ++group) total += temperature_terms[pair * groups.count + group];
      grads.dtemperature[h] -= static_cast<float>(total / in.temperature[h]);
    }
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                 const AttentionOptions& options) {
  VDIT_CHECK(q_in.ndim() == 4 && k_in.ndim() == 4 && v_in.ndim() == 4,
             "attention takes q, k, v as [B, N, H, hd]; got " << to_string(q_in.shape()) << ", "
                 << to_string(k_in.shape()) << ", " << to_string(v_in.shape()));
  const Geometry g{q_in.size(0), q_in.size(1), k_in.size(1), q_in.size(2), q_in.size(3)};
  VDIT_CHECK(k_in.shape() == v_in.shape() && k_in.size(0) == g.batch && k_in.size(2) == g.heads &&
                 k_in.size(3) == g.head_dim,
             "attention k " << to_string(k_in.shape()) << " and v " << to_string(v_in.shape())
                            << " do not fit q " << to_string(q_in.shape()));
  const Tensor& tau_in = options.temperature;
  const Tensor& mask_in = options.key_mask;
  VDIT_CHECK(!tau_in.defined() || tau_in.shape() == Shape{g.heads},
             "attention temperature " << to_string(tau_in.shape()) << " must be [" << g.heads << "]");
  VDIT_CHECK(!mask_in.defined() || mask_in.shape() == (Shape{g.batch, g.k_len}),
             "attention key mask " << to_string(mask_in.shape()) << " must be [" << g.batch << ", "
                                   << g.k_len << "]");
  VDIT_CHECK(!mask_in.defined() || !mask_in.requires_grad(), "the attention key mask takes no gradient");
  if (on_cuda("attention", {&q_in, &k_in, &v_in, &tau_in, &mask_in}))
    return cuda_op(&CudaBackend::attention, "attention")(q_in, k_in, v_in, options);
  const Tensor q = q_in.to_f32(), k = k_in.to_f32(), v = v_in.to_f32();
  const Tensor tau = tau_in.defined() ? tau_in.to_f32() : Tensor();
  const Tensor mask = mask_in.defined() ? mask_in.to_f32() : Tensor();
  const float scale = options.scale > 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(g.head_dim));
  const Inputs in{q.data(), k.data(), v.data(), mask.defined() ? mask.data() : nullptr,
                  tau.defined() ? tau.data() : nullptr, scale};

  Tensor out = Tensor::empty(q.shape());
  Tensor lse = Tensor::empty({g.batch, g.heads, g.q_len});
  forward(g, in, out.data(), lse.data());
  if (!needs_grad({&q_in, &k_in, &v_in, &tau_in})) return out;

  GradRef go = Tape::output(out), gq = q_in.grad_ref(), gk = k_in.grad_ref(), gv = v_in.grad_ref();
  GradRef gt = tau.defined() ? tau_in.grad_ref() : nullptr;
  Tensor saved_out = out.detach();
  Tape::record([=] {
    const float* dout = arrived(go);
    if (!dout) return;
    const Inputs in{q.data(), k.data(), v.data(), mask.defined() ? mask.data() : nullptr,
                    tau.defined() ? tau.data() : nullptr, scale};
    backward(g, in, saved_out.data(), lse.data(), dout,
             {gq ? gq->buffer() : nullptr, gk ? gk->buffer() : nullptr, gv ? gv->buffer() : nullptr,
              gt ? gt->buffer() : nullptr});
  });
  return out;
}

}  // namespace vdit
