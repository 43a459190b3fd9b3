// Streamed attention statistics (diagnostics/attention_stats.cpp) against a naive float64
// computation over the full [N_q, N_k] map, on a query count that is not a multiple of the
// query block; crafted maps with known answers (uniform, one planted sink, a local band); a
// joint attention's three parts (diagnostics/joint_attention.cpp) against the materialised joint
// map restricted to each part; and top-k sparse attention (diagnostics/sparse_attention.cpp),
// plain and joint, against dense and naive top-k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "diagnostics/attention_stats.h"
#include "diagnostics/joint_attention.h"
#include "diagnostics/sparse_attention.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

using testing::all_close;

// softmax(q k^T * scale / temperature[h]) in float64: [H][N_q][N_k], row-major per head.
// q [N_q, H, hd] and k [N_k, H, hd], or with a leading batch axis, whose sample `b` is used.
// Keys where `key_mask` (N_k values, or none) is 0 get no mass.
std::vector<std::vector<double>> naive_maps(const Tensor& q, const Tensor& k, double scale,
                                            const std::vector<float>& temperature, int64_t b = 0,
                                            const float* key_mask = nullptr) {
  const int64_t heads = q.size(-2), head_dim = q.size(-1), n_q = q.size(-3), n_k = k.size(-3);
  const std::vector<float> pq = q.to_vector(), pk = k.to_vector();
  const float* qs = pq.data() + b * n_q * heads * head_dim;
  const float* ks = pk.data() + b * n_k * heads * head_dim;
  std::vector<std::vector<double>> maps(heads, std::vector<double>(n_q * n_k));
  for (int64_t h = 0; h < heads; ++h) {
    const double c = scale / (temperature.empty() ? 1.0 : temperature[h]);
    for (int64_t i = 0; i < n_q; ++i) {
      double* row = maps[h].data() + i * n_k;
      for (int64_t j = 0; j < n_k; ++j) {
        double s = 0.0;
        for (int64_t d = 0; d < head_dim; ++d)
          s += static_cast<double>(qs[(i * heads + h) * head_dim + d]) * ks[(j * heads + h) * head_dim + d];
        row[j] = c * s;
      }
      const auto masked = [&](int64_t j) { return key_mask && key_mask[j] == 0.0f; };
      double m = -INFINITY;
      for (int64_t j = 0; j < n_k; ++j) m = masked(j) ? m : std::max(m, row[j]);
      double total = 0.0;
      for (int64_t j = 0; j < n_k; ++j) total += row[j] = masked(j) ? 0.0 : std::exp(row[j] - m);
      for (int64_t j = 0; j < n_k; ++j) row[j] /= total;
    }
  }
  return maps;
}

// The fraction of keys whose largest probabilities first reach `mass`, by sorting the row.
double naive_keys_for(std::vector<double> row, double mass) {
  std::sort(row.begin(), row.end(), std::greater<>());
  double sum = 0.0;
  for (size_t n = 0; n < row.size(); ++n)
    if ((sum += row[n]) >= mass) return static_cast<double>(n + 1) / row.size();
  return 1.0;
}

double mean_of(const std::vector<double>& x) { return std::accumulate(x.begin(), x.end(), 0.0) / x.size(); }
double std_of(const std::vector<double>& x) {
  const double m = mean_of(x);
  double s = 0.0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / x.size());
}

// Every statistic of one head read straight off its full map.
HeadStats naive_head_stats(const std::vector<double>& map, int64_t n_q, int64_t n_k, const TokenGrid* grid,
                           const AttentionStatsOptions& options) {
  HeadStats st;
  std::vector<double> key_mass(n_k, 0.0), entropy, k90, k95;
  int64_t collapsed = 0;
  for (int64_t i = 0; i < n_q; ++i) {
    const std::vector<double> row(map.begin() + i * n_k, map.begin() + (i + 1) * n_k);
    double h = 0.0;
    for (int64_t j = 0; j < n_k; ++j) {
      if (row[j] > 0.0) h -= row[j] * std::log(row[j]);
      key_mass[j] += row[j] / n_q;
    }
    entropy.push_back(h / std::log(static_cast<double>(n_k)));
    collapsed += *std::max_element(row.begin(), row.end()) > options.sink_threshold;
    k90.push_back(naive_keys_for(row, 0.90));
    k95.push_back(naive_keys_for(row, 0.95));
  }
  st.entropy = mean_of(entropy);
  st.top1_over_threshold = static_cast<double>(collapsed) / n_q;
  st.keys_for_90 = mean_of(k90);
  st.keys_for_90_std = std_of(k90);
  st.keys_for_95 = mean_of(k95);
  st.keys_for_95_std = std_of(k95);
  std::vector<int64_t> order(n_k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key_mass[a] > key_mass[b]; });
  st.sink_mass = key_mass[order[0]];
  st.first_key_mass = key_mass[0];
  for (int64_t s = 0; s < std::min(options.top_sinks, n_k); ++s) {
    st.sink_keys.push_back(order[s]);
    st.sink_key_mass.push_back(key_mass[order[s]]);
  }
  if (grid) {
    const int64_t hw = grid->height * grid->width;
    st.frame_distance_mass.assign(grid->frames, 0.0);
    st.ring_mass.assign(std::max(grid->height, grid->width), 0.0);
    for (int64_t i = 0; i < n_q; ++i)
      for (int64_t j = 0; j < n_k; ++j) {
        const double p = map[i * n_k + j] / n_q;
        const int64_t df = std::abs(i / hw - j / hw);
        st.frame_distance_mass[df] += p;
        const int64_t dh = std::abs(i / grid->width % grid->height - j / grid->width % grid->height);
        const int64_t dw = std::abs(i % grid->width - j % grid->width);
        if (df == 0) st.ring_mass[std::max(dh, dw)] += p;
      }
  }
  st.pooled_rows = std::min(options.max_pooled, n_q);
  st.pooled_cols = std::min(options.max_pooled, n_k);
  st.pooled_map.assign(st.pooled_rows * st.pooled_cols, 0.0);
  auto group_of = [](int64_t token, int64_t n, int64_t groups) {  // [g n / G, (g + 1) n / G)
    int64_t g = 0;
    while ((g + 1) * n / groups <= token) ++g;
    return g;
  };
  auto group_size = [](int64_t g, int64_t n, int64_t groups) { return (g + 1) * n / groups - g * n / groups; };
  for (int64_t i = 0; i < n_q; ++i)
    for (int64_t j = 0; j < n_k; ++j) {
      const int64_t r = group_of(i, n_q, st.pooled_rows), c = group_of(j, n_k, st.pooled_cols);
      st.pooled_map[r * st.pooled_cols + c] +=
          map[i * n_k + j] / (group_size(r, n_q, st.pooled_rows) * group_size(c, n_k, st.pooled_cols));
    }
  return st;
}

::testing::AssertionResult near_all(const std::vector<double>& actual, const std::vector<double>& expected,
                                    double tolerance) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << actual.size() << " values, expected " << expected.size();
  for (size_t i = 0; i < actual.size(); ++i)
    if (!(std::fabs(actual[i] - expected[i]) <= tolerance))
      return ::testing::AssertionFailure() << "element " << i << ": " << actual[i] << " vs " << expected[i];
  return ::testing::AssertionSuccess();
}

// Probabilities are float32 in the streamed pass: agreement to 1e-5 of a mass of 1. Key counts
// are exact unless a query's cumulative mass lands within float rounding of 90% or 95%.
void expect_stats_match(const HeadStats& a, const HeadStats& e) {
  constexpr double kTol = 1e-5;
  EXPECT_NEAR(a.entropy, e.entropy, kTol);
  EXPECT_NEAR(a.sink_mass, e.sink_mass, kTol);
  EXPECT_NEAR(a.first_key_mass, e.first_key_mass, kTol);
  EXPECT_EQ(a.sink_keys, e.sink_keys);
  EXPECT_TRUE(near_all(a.sink_key_mass, e.sink_key_mass, kTol));
  EXPECT_DOUBLE_EQ(a.top1_over_threshold, e.top1_over_threshold);
  EXPECT_NEAR(a.keys_for_90, e.keys_for_90, 1e-12);
  EXPECT_NEAR(a.keys_for_90_std, e.keys_for_90_std, 1e-9);
  EXPECT_NEAR(a.keys_for_95, e.keys_for_95, 1e-12);
  EXPECT_NEAR(a.keys_for_95_std, e.keys_for_95_std, 1e-9);
  EXPECT_TRUE(near_all(a.frame_distance_mass, e.frame_distance_mass, kTol));
  EXPECT_TRUE(near_all(a.ring_mass, e.ring_mass, kTol));
  EXPECT_EQ(a.pooled_rows, e.pooled_rows);
  EXPECT_EQ(a.pooled_cols, e.pooled_cols);
  EXPECT_TRUE(near_all(a.pooled_map, e.pooled_map, kTol));
}

std::vector<HeadStats> naive_stats(const Tensor& q, const Tensor& k, float scale, const std::vector<float>& temperature,
                                   const TokenGrid* grid, const AttentionStatsOptions& options) {
  std::vector<HeadStats> out;
  for (const std::vector<double>& map : naive_maps(q, k, scale, temperature))
    out.push_back(naive_head_stats(map, q.size(0), k.size(0), grid, options));
  return out;
}

const TokenGrid kGrid{3, 5, 7};  // 105 tokens: not a multiple of the 32-query block below
const std::vector<float> kTemperature{0.6f, 1.5f};

AttentionStatsOptions small_blocks(int64_t max_pooled) {
  AttentionStatsOptions options;
  options.query_block = 32;
  options.max_pooled = max_pooled;
  options.sink_threshold = 0.3;
  return options;
}

// Wide logits (std about 3 before temperature) so that some queries collapse and others not.
struct SelfAttentionCase {
  Rng rng{11};
  Tensor q = rng.normal_tensor({kGrid.tokens(), 2, 8}, 2.0f);
  Tensor k = rng.normal_tensor({kGrid.tokens(), 2, 8}, 1.0f);
  float scale = 1.0f / std::sqrt(8.0f);
};

TEST(AttentionStats, SelfAttentionMatchesNaiveFullMap) {
  const SelfAttentionCase in;
  const AttentionStatsOptions options = small_blocks(8);  // 105 tokens into 8 unequal groups
  const std::vector<HeadStats> streamed = attention_statistics(in.q, in.k, in.scale, kTemperature, &kGrid, options);
  const std::vector<HeadStats> naive = naive_stats(in.q, in.k, in.scale, kTemperature, &kGrid, options);
  ASSERT_EQ(streamed.size(), 2u);
  for (size_t h = 0; h < 2; ++h) {
    SCOPED_TRACE("head " + std::to_string(h));
    expect_stats_match(streamed[h], naive[h]);
    // The case must exercise the threshold and spread: neither all nor no queries collapse.
    EXPECT_GT(naive[h].top1_over_threshold, 0.0);
    EXPECT_LT(naive[h].top1_over_threshold, 1.0);
    EXPECT_GT(naive[h].keys_for_90_std, 0.0);
  }
}

TEST(AttentionStats, CrossAttentionMatchesNaiveFullMap) {
  Rng rng(12);
  const Tensor q = rng.normal_tensor({70, 2, 8}, 2.0f), k = rng.normal_tensor({45, 2, 8});
  const AttentionStatsOptions options = small_blocks(64);  // more columns than keys: one per key
  const std::vector<HeadStats> streamed = attention_statistics(q, k, 0.35f, kTemperature, nullptr, options);
  const std::vector<HeadStats> naive = naive_stats(q, k, 0.35f, kTemperature, nullptr, options);
  for (size_t h = 0; h < 2; ++h) {
    SCOPED_TRACE("head " + std::to_string(h));
    expect_stats_match(streamed[h], naive[h]);
    EXPECT_TRUE(streamed[h].frame_distance_mass.empty());
    EXPECT_EQ(streamed[h].pooled_rows, 64);
    EXPECT_EQ(streamed[h].pooled_cols, 45);
  }
}

TEST(AttentionStats, ResultsDoNotDependOnTheQueryBlock) {
  const SelfAttentionCase in;
  AttentionStatsOptions one_block = small_blocks(8);
  one_block.query_block = 1000;
  const std::vector<HeadStats> a = attention_statistics(in.q, in.k, in.scale, kTemperature, &kGrid, one_block);
  const std::vector<HeadStats> b = attention_statistics(in.q, in.k, in.scale, kTemperature, &kGrid, small_blocks(8));
  // Not bit for bit: the logits come from one sgemm per block, and how OpenBLAS's kernel
  // splits its rows (blocks of 32 against one of 105) may change a logit's last bit (it does
  // with the AVX2 Haswell and Zen kernels). A query dropped or counted twice at a block edge
  // would move these by orders of magnitude more.
  constexpr double kLastBits = 1e-6;
  for (size_t h = 0; h < 2; ++h) {
    EXPECT_NEAR(a[h].entropy, b[h].entropy, kLastBits);
    EXPECT_TRUE(near_all(a[h].sink_key_mass, b[h].sink_key_mass, kLastBits));
    EXPECT_TRUE(near_all(a[h].pooled_map, b[h].pooled_map, kLastBits));
    EXPECT_TRUE(near_all(a[h].ring_mass, b[h].ring_mass, kLastBits));
  }
}

TEST(AttentionStats, ZeroQueriesGiveUniformAttention) {
  Rng rng(13);
  const Tensor q = Tensor::zeros({kGrid.tokens(), 2, 8}), k = rng.normal_tensor({kGrid.tokens(), 2, 8});
  const int64_t n = kGrid.tokens();
  for (const HeadStats& st : attention_statistics(q, k, 0.35f, kTemperature, &kGrid, small_blocks(8))) {
    EXPECT_NEAR(st.entropy, 1.0, 1e-6);
    EXPECT_DOUBLE_EQ(st.keys_for_90, std::ceil(0.90 * n) / n);
    EXPECT_DOUBLE_EQ(st.keys_for_95, std::ceil(0.95 * n) / n);
    EXPECT_EQ(st.keys_for_90_std, 0.0);
    EXPECT_NEAR(st.sink_mass, 1.0 / n, 1e-7);  // no key stands out
    EXPECT_EQ(st.top1_over_threshold, 0.0);
    // Frames 0, 1, 2 each see a third of the keys in each frame: distance 0 for every query,
    // distance 1 twice for the middle frame and once for the others, distance 2 once at the ends.
    EXPECT_TRUE(near_all(st.frame_distance_mass, {1.0 / 3, 4.0 / 9, 2.0 / 9}, 1e-6));
    EXPECT_NEAR(std::accumulate(st.ring_mass.begin(), st.ring_mass.end(), 0.0), 1.0 / 3, 1e-6);
    for (double cell : st.pooled_map) EXPECT_NEAR(cell, 1.0 / n, 1e-7);
  }
}

TEST(AttentionStats, PlantedSinkIsFoundFirst) {
  // Every query is u; key 17 is 10 u, the rest small: every query sends nearly all its mass to 17.
  Rng rng(14);
  const int64_t n = kGrid.tokens(), heads = 2, head_dim = 8;
  const Tensor u = rng.normal_tensor({heads, head_dim});
  Tensor q = Tensor::empty({n, heads, head_dim});
  Tensor k = rng.normal_tensor({n, heads, head_dim}, 0.1f);
  for (int64_t i = 0; i < n; ++i) std::copy(u.data(), u.data() + heads * head_dim, q.data() + i * heads * head_dim);
  for (int64_t d = 0; d < heads * head_dim; ++d) k.data()[17 * heads * head_dim + d] = 10.0f * u.data()[d];
  for (const HeadStats& st : attention_statistics(q, k, 1.0f / std::sqrt(8.0f), kTemperature, &kGrid, small_blocks(8))) {
    ASSERT_EQ(st.sink_keys.size(), 5u);
    EXPECT_EQ(st.sink_keys[0], 17);
    EXPECT_GT(st.sink_mass, 0.99);
    EXPECT_EQ(st.sink_key_mass[0], st.sink_mass);
    EXPECT_EQ(st.top1_over_threshold, 1.0);
    EXPECT_DOUBLE_EQ(st.keys_for_90, 1.0 / n);
    EXPECT_LT(st.entropy, 0.05);
  }
}

TEST(AttentionStats, LocalBandKeepsMassInFrameAndNearby) {
  // With x = (3 f, 1.5 h, 1.5 w), q_i = (2 x_i, -1) and k_j = (x_j, |x_j|^2) give logits
  // -|x_i - x_j|^2 + |x_i|^2: a Gaussian band around each query (the last term is constant
  // per query), narrower across frames than within one.
  const int64_t n = kGrid.tokens();
  Tensor q = Tensor::empty({n, 1, 4}), k = Tensor::empty({n, 1, 4});
  for (int64_t i = 0; i < n; ++i) {
    const float x[3] = {3.0f * (i / 35), 1.5f * (i / 7 % 5), 1.5f * (i % 7)};
    const float norm = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
    for (int d = 0; d < 3; ++d) {
      q.data()[i * 4 + d] = 2.0f * x[d];
      k.data()[i * 4 + d] = x[d];
    }
    q.data()[i * 4 + 3] = -1.0f;
    k.data()[i * 4 + 3] = norm;
  }
  const HeadStats st = attention_statistics(q, k, 1.0f, {}, &kGrid, small_blocks(8))[0];
  EXPECT_GT(st.frame_distance_mass[0], 0.999);
  EXPECT_LT(st.frame_distance_mass[2], 1e-12);
  ASSERT_EQ(st.ring_mass.size(), 7u);
  EXPECT_GT(st.ring_mass[0], st.ring_mass[1]);
  EXPECT_GT(st.ring_mass[1], st.ring_mass[2]);
  EXPECT_GT(st.ring_mass[0] + st.ring_mass[1], 0.99);
  for (size_t r = 3; r < st.ring_mass.size(); ++r) EXPECT_LT(st.ring_mass[r], 1e-6) << "ring " << r;
  EXPECT_NEAR(std::accumulate(st.ring_mass.begin(), st.ring_mass.end(), 0.0), st.frame_distance_mass[0], 1e-6);
  const std::vector<HeadStats> naive = naive_stats(q, k, 1.0f, {}, &kGrid, small_blocks(8));
  EXPECT_TRUE(near_all(st.ring_mass, naive[0].ring_mass, 1e-5));
}

TEST(AttentionStats, PooledMapIsTheMapWhenLargeEnoughAndKeepsEachQuerysMass) {
  const SelfAttentionCase in;
  const int64_t n = kGrid.tokens();
  const HeadStats full = attention_statistics(in.q, in.k, in.scale, kTemperature, &kGrid, small_blocks(200))[0];
  ASSERT_EQ(full.pooled_rows, n);
  ASSERT_EQ(full.pooled_cols, n);
  EXPECT_TRUE(near_all(full.pooled_map, naive_maps(in.q, in.k, in.scale, kTemperature)[0], 1e-6));

  // Cells are means over their queries and keys, so along a row of cells, mean times the
  // column group's width (13 or 14 keys) sums to one query's mass, 1.
  const HeadStats pooled = attention_statistics(in.q, in.k, in.scale, kTemperature, &kGrid, small_blocks(8))[0];
  for (int64_t r = 0; r < 8; ++r) {
    double mass = 0.0;
    for (int64_t c = 0; c < 8; ++c) mass += pooled.pooled_map[r * 8 + c] * ((c + 1) * n / 8 - c * n / 8);
    EXPECT_NEAR(mass, 1.0, 1e-5) << "row " << r;
  }
}

TEST(AttentionStats, PooledMapCorrelation) {
  Rng rng(15);
  std::vector<double> a(64 * 64), b(64 * 64), affine(64 * 64);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = rng.uniform();
    b[i] = rng.uniform();
    affine[i] = 3.0 - 2.0 * a[i];
  }
  EXPECT_NEAR(pooled_map_correlation(a, a), 1.0, 1e-12);
  EXPECT_NEAR(pooled_map_correlation(a, affine), -1.0, 1e-12);
  EXPECT_LT(std::fabs(pooled_map_correlation(a, b)), 0.1);  // std of r here is 1 / 64
  EXPECT_TRUE(std::isnan(pooled_map_correlation(a, std::vector<double>(a.size(), 0.5))));
  EXPECT_THROW(pooled_map_correlation(a, std::vector<double>(10, 0.0)), Error);
}

TEST(AttentionStats, RejectsInconsistentInputs) {
  const Tensor q = Tensor::zeros({105, 2, 8}), k = Tensor::zeros({105, 2, 8});
  const AttentionStatsOptions options;
  EXPECT_THROW(attention_statistics(q, Tensor::zeros({105, 2, 4}), 1.0f, {}, nullptr, options), Error);
  EXPECT_THROW(attention_statistics(q, k, 1.0f, {1.0f}, nullptr, options), Error);
  const TokenGrid wrong{2, 5, 7};
  EXPECT_THROW(attention_statistics(q, k, 1.0f, {}, &wrong, options), Error);
  EXPECT_THROW(attention_statistics(q, Tensor::zeros({1, 2, 8}), 1.0f, {}, nullptr, options), Error);
  AttentionStatsOptions no_block;
  no_block.query_block = 0;
  EXPECT_THROW(attention_statistics(q, k, 1.0f, {}, nullptr, no_block), Error);
}

// A joint attention call (layers/attention_probe.h) built directly: video rows of kJointGrid and
// 9 text rows of which the first 6 are real (the rest padding, key_mask 0), in Mochi's order
// (video then text) or CogVideoX's (text then video); queries the same rows, or the video rows
// only (Mochi's last block). Padding keys are 6x the others, so that a cut which kept them would
// give them much of the mass of some queries.
const TokenGrid kJointGrid{2, 3, 5};

struct JointCase {
  bool text_first, video_queries_only;
  int64_t text = 9, real;
  JointLayout layout;
  Tensor q, k, v, mask;
  AttentionOptions options;

  JointCase(bool text_first_in, bool video_queries_only_in, uint64_t seed, int64_t real_in = 6)
      : text_first(text_first_in), video_queries_only(video_queries_only_in), real(real_in) {
    const int64_t video = kJointGrid.tokens(), n_k = video + text;
    layout = text_first ? JointLayout{text, video, 0, text} : JointLayout{0, video, video, text};
    Rng rng(seed);
    q = rng.normal_tensor({1, video_queries_only ? video : n_k, 2, 8}, 2.0f);
    k = rng.normal_tensor({1, n_k, 2, 8});
    v = rng.normal_tensor({1, n_k, 2, 8});
    std::vector<float> m(n_k, 1.0f);
    for (int64_t j = layout.text_begin + real; j < layout.text_begin + text; ++j) {
      m[j] = 0.0f;
      for (int64_t c = 0; c < 16; ++c) k.data()[j * 16 + c] *= 6.0f;
    }
    mask = Tensor::from_vector({1, n_k}, m);
    options.key_mask = mask;
    options.temperature = Tensor::from_vector({2}, kTemperature);
    options.scale = 0.35f;
  }
  AttentionCall call() const { return {3, AttentionKind::Joint, q, k, v, options, layout}; }

  std::vector<int64_t> range(int64_t begin, int64_t count) const {
    std::vector<int64_t> r(count);
    std::iota(r.begin(), r.end(), begin);
    return r;
  }
  std::vector<int64_t> video_queries() const { return range(video_queries_only ? 0 : layout.video_begin, layout.video_count); }
  std::vector<int64_t> text_queries() const { return video_queries_only ? std::vector<int64_t>{} : range(layout.text_begin, real); }
  std::vector<int64_t> video_keys() const { return range(layout.video_begin, layout.video_count); }
  std::vector<int64_t> text_keys() const { return range(layout.text_begin, real); }
  std::vector<int64_t> unmasked_keys() const {
    std::vector<int64_t> keys;
    for (int64_t j = 0; j < k.size(1); ++j)
      if (mask.data()[j] != 0.0f) keys.push_back(j);
    return keys;
  }
};

// Rows `queries` and columns `keys` of a map with n_k columns, each row renormalised to sum 1.
std::vector<double> restricted_map(const std::vector<double>& map, int64_t n_k, const std::vector<int64_t>& queries,
                                   const std::vector<int64_t>& keys) {
  std::vector<double> out;
  for (int64_t i : queries) {
    double total = 0.0;
    for (int64_t j : keys) total += map[i * n_k + j];
    for (int64_t j : keys) out.push_back(map[i * n_k + j] / total);
  }
  return out;
}

// The mean over `queries` of the mass a map with n_k columns puts on `keys`.
double mean_mass(const std::vector<double>& map, int64_t n_k, const std::vector<int64_t>& queries,
                 const std::vector<int64_t>& keys) {
  double total = 0.0;
  for (int64_t i : queries)
    for (int64_t j : keys) total += map[i * n_k + j];
  return total / static_cast<double>(queries.size());
}

// Each part against the statistics of the materialised joint map (float64, padding masked)
// restricted to the part's queries and keys and renormalised: the normalisation
// joint_attention.h states, computed without cutting q or k.
TEST(JointAttentionStats, ThreePartsMatchTheRestrictedJointMap) {
  const AttentionStatsOptions options = small_blocks(8);
  for (const auto& [text_first, video_only] : {std::pair{false, false}, {true, false}, {false, true}}) {
    const JointCase in(text_first, video_only, 21);
    SCOPED_TRACE(std::string(text_first ? "text first" : "video first") + (video_only ? ", video queries only" : ""));
    const JointStats stats = joint_attention_statistics(in.call(), kJointGrid, options);
    const int64_t n_k = in.k.size(1);
    const std::vector<std::vector<double>> maps = naive_maps(in.q, in.k, 0.35, kTemperature, 0, in.mask.data());
    ASSERT_EQ(stats.video_to_video.size(), 2u);
    ASSERT_EQ(stats.video_to_text.size(), 2u);
    ASSERT_EQ(stats.text_to_all.size(), video_only ? 0u : 2u);
    ASSERT_EQ(stats.video_text_mass.size(), 2u);
    ASSERT_EQ(stats.text_text_mass.size(), video_only ? 0u : 2u);
    for (size_t h = 0; h < 2; ++h) {
      SCOPED_TRACE("head " + std::to_string(h));
      const std::vector<double>& map = maps[h];
      const int64_t videos = kJointGrid.tokens(), keys = in.unmasked_keys().size();
      expect_stats_match(stats.video_to_video[h],
                         naive_head_stats(restricted_map(map, n_k, in.video_queries(), in.video_keys()), videos, videos,
                                          &kJointGrid, options));
      expect_stats_match(stats.video_to_text[h],
                         naive_head_stats(restricted_map(map, n_k, in.video_queries(), in.text_keys()), videos, in.real,
                                          nullptr, options));
      const double video_text = mean_mass(map, n_k, in.video_queries(), in.text_keys());
      EXPECT_NEAR(stats.video_text_mass[h], video_text, 1e-5);
      EXPECT_GT(video_text, 0.01);  // the text keys matter to the video queries
      if (video_only) continue;
      expect_stats_match(stats.text_to_all[h],
                         naive_head_stats(restricted_map(map, n_k, in.text_queries(), in.unmasked_keys()), in.real, keys,
                                          nullptr, options));
      EXPECT_NEAR(stats.text_text_mass[h], mean_mass(map, n_k, in.text_queries(), in.text_keys()), 1e-5);
    }
  }
}

TEST(JointAttentionStats, KeysAreLabelledByStreamAndPosition) {
  for (const bool text_first : {false, true}) {
    const JointCase in(text_first, false, 22);
    const JointParts parts = cut_joint_call(in.call(), 0, &kJointGrid);
    EXPECT_EQ(parts.keys.real_text, 6);
    EXPECT_EQ(parts.keys_k.size(1), 36);
    const int64_t first_text = text_first ? 0 : 30, first_video = text_first ? 6 : 0;
    EXPECT_EQ(parts.keys.position(first_text, kJointGrid), "text 0");
    EXPECT_EQ(parts.keys.position(first_text + 5, kJointGrid), "text 5");
    EXPECT_EQ(parts.keys.position(first_video, kJointGrid), "(0,0,0)");
    EXPECT_EQ(parts.keys.position(first_video + 22, kJointGrid), "(1,1,2)");  // 22 = 15 + 5 + 2
  }
}

TEST(JointAttentionStats, RejectsLayoutsAndMasksThatDoNotCut) {
  JointCase in(false, false, 23);
  const JointLayout good = in.layout;
  in.layout.text_count = 8;  // video + text no longer cover the keys
  EXPECT_THROW(cut_joint_call(in.call()), Error);
  in.layout = good;
  EXPECT_THROW(cut_joint_call(in.call(), 0, &kGrid), Error);  // the grid has 105 tokens, the call 30
  in.mask.data()[31] = 0.0f;  // a hole among the real text rows
  EXPECT_THROW(cut_joint_call(in.call()), Error);
  in.mask.data()[31] = 1.0f;
  in.mask.data()[4] = 0.0f;  // a masked video row
  EXPECT_THROW(cut_joint_call(in.call()), Error);
}

// Top-k attention in float64: per query the `keep` most probable keys (ties to the lower
// index), softmax among them, times v. Inputs [B, N, H, hd].
std::vector<double> naive_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                                           const std::vector<float>& temperature, int64_t keep) {
  const int64_t batch = q.size(0), n_q = q.size(1), n_k = k.size(1), heads = q.size(2), head_dim = q.size(3);
  const std::vector<float> pv = v.to_vector();
  std::vector<double> out(q.numel(), 0.0);
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<std::vector<double>> maps = naive_maps(q, k, scale, temperature, b);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < n_q; ++i) {
        const double* p = maps[h].data() + i * n_k;
        std::vector<int64_t> order(n_k);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [p](int64_t x, int64_t y) { return p[x] > p[y]; });
        double total = 0.0;
        for (int64_t t = 0; t < keep; ++t) total += p[order[t]];
        double* o = out.data() + ((b * n_q + i) * heads + h) * head_dim;
        for (int64_t t = 0; t < keep; ++t)
          for (int64_t d = 0; d < head_dim; ++d)
            o[d] += p[order[t]] / total * pv[((b * n_k + order[t]) * heads + h) * head_dim + d];
      }
  }
  return out;
}

struct SparseCase {
  Rng rng{16};
  Tensor q = rng.normal_tensor({2, 300, 2, 8}, 1.5f);  // 300 queries: two blocks of 256
  Tensor k = rng.normal_tensor({2, 100, 2, 8});
  Tensor v = rng.normal_tensor({2, 100, 2, 8});
};

TEST(SparseAttention, KeepingEveryKeyIsDenseAttention) {
  const SparseCase in;
  AttentionOptions dense;
  dense.temperature = Tensor::from_vector({2}, kTemperature);
  dense.scale = 0.4f;
  const std::vector<float> expected = attention(in.q, in.k, in.v, dense).to_vector();
  const Tensor out = sparse_attention(in.q, in.k, in.v, 0.4f, kTemperature, 1.0);
  EXPECT_EQ(out.shape(), in.q.shape());
  EXPECT_TRUE(all_close(out.to_vector(), std::vector<double>(expected.begin(), expected.end()), 1e-5));
}

TEST(SparseAttention, SmallKeepMatchesNaiveTopK) {
  const SparseCase in;
  // 7 of 100 keys: 0.07 * 100 is 7.000000000000001 in binary and must not round up to 8.
  const Tensor out = sparse_attention(in.q, in.k, in.v, 0.4f, kTemperature, 0.07);
  EXPECT_TRUE(all_close(out.to_vector(), naive_sparse_attention(in.q, in.k, in.v, 0.4f, kTemperature, 7), 1e-5));
  EXPECT_FALSE(all_close(out.to_vector(), naive_sparse_attention(in.q, in.k, in.v, 0.4f, kTemperature, 8), 1e-3));
}

TEST(SparseAttention, TiesGoToTheLowerKeyIndex) {
  // Zero queries tie every key: keeping 3 of 100 must keep keys 0, 1, 2, averaging their values.
  const SparseCase in;
  const Tensor q = Tensor::zeros(in.q.shape());
  const std::vector<float> out = sparse_attention(q, in.k, in.v, 0.4f, {}, 0.03).to_vector();
  const std::vector<float> v = in.v.to_vector();
  const int64_t row = 2 * 8;  // H * hd
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i : {0, 299})
      for (int64_t c = 0; c < row; ++c) {
        const float* vb = v.data() + b * 100 * row + c;
        EXPECT_NEAR(out[(b * 300 + i) * row + c], (vb[0] + vb[row] + vb[2 * row]) / 3.0, 1e-6);
      }
}

TEST(SparseAttention, RejectsBadInputs) {
  const SparseCase in;
  EXPECT_THROW(sparse_attention(in.q, in.k, in.v, 0.4f, {}, 0.0), Error);
  EXPECT_THROW(sparse_attention(in.q, in.k, in.v, 0.4f, {}, 1.5), Error);
  EXPECT_THROW(sparse_attention(in.q, in.k, in.v, 0.4f, {1.0f}, 0.5), Error);
  EXPECT_THROW(sparse_attention(in.q, in.k, Tensor::zeros({2, 101, 2, 8}), 0.4f, {}, 0.5), Error);
}

// Rows `rows` of t [1, N, H, hd].
Tensor rows_of(const Tensor& t, const std::vector<int64_t>& rows) {
  const int64_t width = t.size(2) * t.size(3);
  Tensor out = Tensor::empty({1, static_cast<int64_t>(rows.size()), t.size(2), t.size(3)});
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy(t.data() + rows[i] * width, t.data() + (rows[i] + 1) * width, out.data() + i * width);
  return out;
}

// Two batch rows with 6 and 3 real text rows: each query keeps the top 20% of its row's
// unmasked keys (8 of 36, 7 of 33), as naive top-k over those keys alone.
TEST(JointAttentionStats, SparsifiedPerQueryOverEachRowsUnmaskedKeys) {
  for (const bool text_first : {false, true}) {
    SCOPED_TRACE(text_first ? "text first" : "video first");
    const JointCase a(text_first, false, 24), b(text_first, false, 25, 3);
    const Tensor q = concat({a.q, b.q}, 0), k = concat({a.k, b.k}, 0), v = concat({a.v, b.v}, 0);
    AttentionOptions options = a.options;
    options.key_mask = concat({a.mask, b.mask}, 0);
    const AttentionCall call{3, AttentionKind::Joint, q, k, v, options, a.layout};
    const Tensor out = sparse_joint_attention(call, 0.2);
    ASSERT_EQ(out.shape(), q.shape());
    const std::vector<float> got = out.to_vector();
    const int64_t row = a.q.numel();
    for (const JointCase* c : {&a, &b}) {
      const std::vector<int64_t> keys = c->unmasked_keys();
      const std::vector<double> expected = naive_sparse_attention(c->q, rows_of(c->k, keys), rows_of(c->v, keys), 0.35f,
                                                                  kTemperature, kept_keys(0.2, keys.size()));
      const auto begin = got.begin() + (c == &a ? 0 : row);
      EXPECT_TRUE(all_close(std::vector<float>(begin, begin + row), expected, 1e-5)) << (c == &a ? "row 0" : "row 1");
    }
    EXPECT_EQ(SparseProbe(AttentionKind::Joint, 0.2).observe(call).to_vector(), got);
    EXPECT_FALSE(sparse_joint_attention(call, 1.0).defined());  // every key kept: the dense attention
  }
}

}  // namespace
}  // namespace vdit
