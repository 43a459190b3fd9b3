// Streamed attention statistics. Per head, blocks of query_block queries get their logits from
// one sgemm ([rows, N_k], the only large buffer), each row becomes probabilities in place, and
// everything reported is a sum over queries of something read off that row; the sums finish
// into means once all queries have passed. Heads run in parallel, one per thread, each summing
// its queries in order, so results do not depend on the thread count.
#include "diagnostics/attention_stats.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "autograd/blas.h"
#include "autograd/check.h"
#include "autograd/fast_math.h"
#include "autograd/parallel_errors.h"
#include "diagnostics/attention_stats_sums.h"
#include "diagnostics/diagnostics_cuda.h"

namespace vdit {

namespace {

// What every head of one call shares.
struct MapLayout {
  int64_t n_q, n_k;
  const TokenGrid* grid;  // null for cross-attention
  const AttentionStatsOptions& options;
  TokenGroups query_groups, key_groups;
};

struct RowSoftmax {
  double entropy;  // -sum p log p
  double top1;     // max p
};

// Turns a row of logits into probabilities in place. With Z = sum exp(s - max s), the entropy
// is log Z - sum p (s - max s), so no key needs a logarithm, and the best key's p is 1 / Z.
// Sums run in independent lanes so that the loop vectorises (see fast_math.h).
RowSoftmax softmax_in_place(float* s, int64_t n) {
  const float m = row_max(s, n, -INFINITY);
  float z[kLanes] = {}, zs[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float d = s[j + l] - m, e = exp_approx(d);
      s[j + l] = e;
      z[l] += e;
      zs[l] += e * d;
    }
  for (; j < n; ++j) {
    const float d = s[j] - m, e = exp_approx(d);
    s[j] = e;
    z[0] += e;
    zs[0] += e * d;
  }
  double total = 0.0, weighted = 0.0;
  for (int l = 0; l < kLanes; ++l) {
    total += z[l];
    weighted += zs[l];
  }
  const float inv = static_cast<float>(1.0 / total);
  for (j = 0; j < n; ++j) s[j] *= inv;
  return {std::log(total) - weighted / total, 1.0 / total};
}

// The fewest of the probabilities `p` whose sum reaches `mass`: the count of the largest ones
// needed. Quickselect that only descends into the side holding the crossing, so O(n) expected
// rather than a sort's O(n log n); it reorders `p`.
int64_t keys_holding(float* p, int64_t n, double mass) {
  int64_t lo = 0, hi = n, taken = 0;
  while (lo < hi) {
    const float pivot = p[lo + (hi - lo) / 2];
    float* const above_end = std::partition(p + lo, p + hi, [pivot](float x) { return x > pivot; });
    float* const equal_end = std::partition(above_end, p + hi, [pivot](float x) { return x == pivot; });
    const double above = std::accumulate(p + lo, above_end, 0.0);
    if (above >= mass) {  // the crossing lies among the values above the pivot
      hi = above_end - p;
      continue;
    }
    mass -= above;
    taken += (above_end - p) - lo;
    const int64_t equal = equal_end - above_end;
    const double needed = std::ceil(mass / pivot);  // +inf for a zero pivot
    if (needed <= static_cast<double>(equal)) return taken + static_cast<int64_t>(needed);
    mass -= equal * static_cast<double>(pivot);
    taken += equal;
    lo = equal_end - p;
  }
  return taken;  // rounding left `mass` just out of reach: every key is needed
}

// The fewest largest probabilities of a row that reach each of the masses 90% and 95%. One
// pass histograms the row by its floats' leading bits, which order non-negative floats like
// their values, keeping each bucket's count and mass; the bucket where the running mass from
// the top crosses a target is then the only one whose values need exact selection. Buckets
// span a factor 2^(1/8); values below 2^-40 share the lowest.
class MassCounter {
 public:
  static constexpr std::array<double, 2> kMasses{0.90, 0.95};  // ascending

  explicit MassCounter(int64_t n) : members_(n) {}

  std::array<int64_t, 2> count(const float* p, int64_t n) {
    count_.fill(0);
    mass_.fill(0.0);
    for (int64_t j = 0; j < n; ++j) {
      const int b = bucket(p[j]);
      ++count_[b];
      mass_[b] += p[j];
    }
    std::array<int64_t, 2> keys{};
    int b = kBuckets - 1;
    double above = 0.0;  // mass and count of the buckets above b
    int64_t taken = 0;
    for (size_t t = 0; t < kMasses.size(); ++t) {
      while (b >= 0 && above + mass_[b] < kMasses[t]) {
        above += mass_[b];
        taken += count_[b--];
      }
      if (b < 0) {  // rounding left the mass just out of reach: every key is needed
        keys[t] = n;
        continue;
      }
      int64_t m = 0;
      for (int64_t j = 0; j < n; ++j)
        if (bucket(p[j]) == b) members_[m++] = p[j];
      keys[t] = taken + keys_holding(members_.data(), m, kMasses[t] - above);
    }
    return keys;
  }

 private:
  static constexpr int kShift = 20;  // keeps the exponent and 3 mantissa bits
  static constexpr uint32_t kLowest = std::bit_cast<uint32_t>(0x1p-40f) >> kShift;
  static constexpr int kBuckets = (std::bit_cast<uint32_t>(1.0f) >> kShift) - kLowest + 1;  // p <= 1

  static int bucket(float x) {
    const uint32_t key = std::bit_cast<uint32_t>(x) >> kShift;
    return key > kLowest ? static_cast<int>(key - kLowest) : 0;
  }

  std::array<int64_t, kBuckets> count_;
  std::array<double, kBuckets> mass_;
  std::vector<float> members_;
};

double mean(double sum, int64_t n) { return sum / static_cast<double>(n); }

// Population standard deviation from a sum and a sum of squares.
double deviation(double sum, double sum_sq, int64_t n) {
  const double m = mean(sum, n);
  return std::sqrt(std::max(0.0, mean(sum_sq, n) - m * m));
}

// Sums over the queries of one head, each a statistic of that query's probability row.
class HeadAccumulator {
 public:
  explicit HeadAccumulator(const MapLayout& layout) : layout_(layout), mass_counter_(layout.n_k) {
    sums_.key_mass.assign(layout.n_k, 0.0);
    sums_.pooled.assign(layout.query_groups.count() * layout.key_groups.count(), 0.0);
    if (const TokenGrid* g = layout.grid) {
      sums_.frame_distance.assign(g->frames, 0.0);
      sums_.ring.assign(std::max(g->height, g->width), 0.0);
    }
  }

  // p: the query's probabilities over all keys.
  void add(int64_t query, const float* p, const RowSoftmax& row) {
    const int64_t n_k = layout_.n_k;
    sums_.entropy += row.entropy;
    sums_.collapsed += row.top1 > layout_.options.sink_threshold ? 1 : 0;
    for (int64_t j = 0; j < n_k; ++j) sums_.key_mass[j] += p[j];
    add_sparsity(p);
    const TokenGroups& keys = layout_.key_groups;
    double* pooled_row = sums_.pooled.data() + layout_.query_groups.group_of(query) * keys.count();
    for (int64_t g = 0; g < keys.count(); ++g) pooled_row[g] += row_sum(p + keys.begin(g), keys.size(g));
    if (layout_.grid) add_locality(query, p);
  }

  HeadStats finish() const {
    return finish_head_stats(sums_, layout_.n_q, layout_.n_k, layout_.options.top_sinks, layout_.query_groups,
                             layout_.key_groups);
  }

 private:
  void add_sparsity(const float* p) {
    const std::array<int64_t, 2> keys = mass_counter_.count(p, layout_.n_k);
    const double k90 = static_cast<double>(keys[0]), k95 = static_cast<double>(keys[1]);
    sums_.keys_90 += k90;
    sums_.keys_90_sq += k90 * k90;
    sums_.keys_95 += k95;
    sums_.keys_95_sq += k95 * k95;
  }

  void add_locality(int64_t query, const float* p) {
    const TokenGrid& g = *layout_.grid;
    const int64_t frame_size = g.height * g.width;
    const int64_t fq = query / frame_size, hq = query / g.width % g.height, wq = query % g.width;
    for (int64_t f = 0; f < g.frames; ++f)
      sums_.frame_distance[std::abs(fq - f)] += row_sum(p + f * frame_size, frame_size);
    const float* own_frame = p + fq * frame_size;
    for (int64_t h = 0; h < g.height; ++h)
      for (int64_t w = 0; w < g.width; ++w)
        sums_.ring[std::max(std::abs(hq - h), std::abs(wq - w))] += own_frame[h * g.width + w];
  }

  const MapLayout& layout_;
  HeadSums sums_;
  MassCounter mass_counter_;
};

void check_inputs(const Tensor& q, const Tensor& k, float scale, const std::vector<float>& temperature,
                  const TokenGrid* grid, const AttentionStatsOptions& options) {
  VDIT_CHECK(q.ndim() == 3 && k.ndim() == 3 && q.size(1) == k.size(1) && q.size(2) == k.size(2),
             "attention statistics take q [N_q, H, hd] and k [N_k, H, hd]; got "
                 << to_string(q.shape()) << " and " << to_string(k.shape()));
  VDIT_CHECK(q.size(0) >= 1 && k.size(0) >= 2,
             "attention statistics need a query and at least two keys; got q " << to_string(q.shape())
                                                                               << ", k " << to_string(k.shape()));
  VDIT_CHECK(scale > 0.0f, "attention statistics scale must be positive; got " << scale);
  VDIT_CHECK(temperature.empty() || static_cast<int64_t>(temperature.size()) == q.size(1),
             "attention statistics: " << temperature.size() << " temperatures for " << q.size(1) << " heads");
  VDIT_CHECK(!grid || (grid->frames >= 1 && grid->height >= 1 && grid->width >= 1 &&
                       grid->tokens() == q.size(0) && grid->tokens() == k.size(0)),
             "attention statistics: token grid " << grid->frames << "x" << grid->height << "x" << grid->width
                                                 << " does not fit self-attention over q " << to_string(q.shape())
                                                 << ", k " << to_string(k.shape()));
  VDIT_CHECK(options.max_pooled >= 1 && options.query_block >= 1 && options.top_sinks >= 0,
             "attention statistics options need max_pooled >= 1, query_block >= 1, top_sinks >= 0; got "
                 << options.max_pooled << ", " << options.query_block << ", " << options.top_sinks);
}

}  // namespace

std::string TokenGrid::position(int64_t token) const {
  const int64_t per_frame = height * width;
  return "(" + std::to_string(token / per_frame) + "," + std::to_string(token % per_frame / width) + "," +
         std::to_string(token % width) + ")";
}

HeadStats finish_head_stats(const HeadSums& sums, int64_t n_q, int64_t n_k, int64_t top_sinks,
                            const TokenGroups& queries, const TokenGroups& keys) {
  HeadStats stats;
  stats.entropy = mean(sums.entropy, n_q) / std::log(static_cast<double>(n_k));
  stats.top1_over_threshold = mean(sums.collapsed, n_q);
  stats.keys_for_90 = mean(sums.keys_90, n_q) / n_k;
  stats.keys_for_90_std = deviation(sums.keys_90, sums.keys_90_sq, n_q) / n_k;
  stats.keys_for_95 = mean(sums.keys_95, n_q) / n_k;
  stats.keys_for_95_std = deviation(sums.keys_95, sums.keys_95_sq, n_q) / n_k;

  const std::vector<double>& key_mass = sums.key_mass;
  std::vector<int64_t> order(n_k);
  std::iota(order.begin(), order.end(), 0);
  const int64_t sinks = std::min(top_sinks, n_k);
  std::partial_sort(order.begin(), order.begin() + sinks, order.end(), [&](int64_t a, int64_t b) {
    return key_mass[a] != key_mass[b] ? key_mass[a] > key_mass[b] : a < b;
  });
  for (int64_t s = 0; s < sinks; ++s) {
    stats.sink_keys.push_back(order[s]);
    stats.sink_key_mass.push_back(mean(key_mass[order[s]], n_q));
  }
  stats.sink_mass = mean(*std::max_element(key_mass.begin(), key_mass.end()), n_q);
  stats.first_key_mass = mean(key_mass[0], n_q);

  for (double m : sums.frame_distance) stats.frame_distance_mass.push_back(mean(m, n_q));
  for (double m : sums.ring) stats.ring_mass.push_back(mean(m, n_q));

  stats.pooled_rows = queries.count();
  stats.pooled_cols = keys.count();
  stats.pooled_map = sums.pooled;
  for (int64_t r = 0; r < stats.pooled_rows; ++r)
    for (int64_t c = 0; c < stats.pooled_cols; ++c)
      stats.pooled_map[r * stats.pooled_cols + c] /= static_cast<double>(queries.size(r) * keys.size(c));
  return stats;
}

std::vector<HeadStats> attention_statistics(const Tensor& q_in, const Tensor& k_in, float scale,
                                            const std::vector<float>& temperature,
                                            const TokenGrid* grid,
                                            const AttentionStatsOptions& options) {
  check_inputs(q_in, k_in, scale, temperature, grid, options);
#if VDITKIT_CUDA
  if (q_in.is_cuda() || k_in.is_cuda()) return attention_statistics_cuda(q_in, k_in, scale, temperature, grid, options);
#endif
  const Tensor q = q_in.to_f32(), k = k_in.to_f32();
  // A NaN or infinity would make every statistic meaningless (and the bucketed selection of
  // keys_for_90 index past its buckets): refuse it by name.
  for (const Tensor* t : {&q, &k}) {
    const float* p = t->data();
    bool finite = true;
    for (int64_t i = 0; i < t->numel(); ++i) finite &= std::isfinite(p[i]);
    VDIT_CHECK(finite, "attention statistics: the " << (t == &q ? "queries" : "keys") << " are not finite");
  }
  const int64_t n_q = q.size(0), n_k = k.size(0), heads = q.size(1), head_dim = q.size(2);
  const int64_t ld = heads * head_dim, block = std::min(options.query_block, n_q);
  const MapLayout layout{n_q, n_k, grid, options, TokenGroups(n_q, std::min(options.max_pooled, n_q)),
                         TokenGroups(n_k, std::min(options.max_pooled, n_k))};
  std::vector<HeadStats> stats(heads);
  ParallelErrors errors;
#pragma omp parallel
  {
    std::vector<float> logits;
    errors.run([&] { logits.resize(block * n_k); });
#pragma omp for schedule(dynamic)
    for (int64_t h = 0; h < heads; ++h) errors.run([&] {
      const float c = temperature.empty() ? scale : scale / temperature[h];
      HeadAccumulator head(layout);
      for (int64_t q0 = 0; q0 < n_q; q0 += block) {
        const int64_t rows = std::min(block, n_q - q0);
        blas::sgemm(false, true, rows, n_k, head_dim, c, q.data() + q0 * ld + h * head_dim, ld,
                    k.data() + h * head_dim, ld, 0.0f, logits.data(), n_k);
        for (int64_t i = 0; i < rows; ++i) {
          float* p = logits.data() + i * n_k;
          const RowSoftmax row = softmax_in_place(p, n_k);
          head.add(q0 + i, p, row);
        }
      }
      stats[h] = head.finish();
    });
  }
  errors.rethrow();
  return stats;
}

double pooled_map_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  VDIT_CHECK(a.size() == b.size() && !a.empty(),
             "pooled maps of " << a.size() << " and " << b.size() << " cells cannot be correlated");
  const double n = static_cast<double>(a.size());
  const double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double cov = 0.0, var_a = 0.0, var_b = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    cov += (a[i] - mean_a) * (b[i] - mean_b);
    var_a += (a[i] - mean_a) * (a[i] - mean_a);
    var_b += (b[i] - mean_b) * (b[i] - mean_b);
  }
  if (var_a == 0.0 || var_b == 0.0) return std::nan("");
  return cov / std::sqrt(var_a * var_b);
}

}  // namespace vdit
