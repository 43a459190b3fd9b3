#include "diagnostics/diagnose.h"

#include <algorithm>
#include <cmath>

#include "autograd/check.h"
#include "autograd/tape.h"
#include "diagnostics/attention_call.h"
#include "diagnostics/diagnostics_cuda.h"
#include "diagnostics/probe_set.h"
#include "diagnostics/sparse_attention.h"

namespace vdit {

namespace {

// Per head, each sink key's value norm over the mean value norm of the head's keys. The norms
// of every key's value, v [1, Nk, H, hd] -> [Nk, H], are computed where v lives (device-agnostic
// ops); only they come back.
std::vector<std::vector<double>> sink_value_norms(const Tensor& v, const std::vector<HeadStats>& stats) {
  const int64_t n_k = v.size(1), heads = v.size(2);
  const std::vector<float> squares = sum(square(v.detach().to_f32()), {3}).to_vector();
  std::vector<std::vector<double>> ratios(heads);
  for (int64_t h = 0; h < heads; ++h) {
    double mean = 0.0;
    for (int64_t j = 0; j < n_k; ++j) mean += std::sqrt(static_cast<double>(squares[j * heads + h]));
    mean /= static_cast<double>(n_k);
    for (int64_t key : stats[h].sink_keys)
      ratios[h].push_back(mean > 0.0 ? std::sqrt(static_cast<double>(squares[key * heads + h])) / mean : NAN);
  }
  return ratios;
}

// The rows of t [1, N, ...] padded with zero rows to a multiple of s and grouped s at a time:
// [1, ceil(N / s), s, rest]; [:, :, 0] are rows 0, s, 2s, ...
Tensor rows_by(const Tensor& t, int64_t s) {
  const int64_t n = t.size(1), m = (n + s - 1) / s, rest = t.numel() / n;
  Shape pad = t.shape();
  pad[1] = m * s - n;
  const Tensor padded = pad[1] == 0 ? t : concat({t, Tensor::zeros(pad, t.dtype(), t.device())}, 1);
  return reshape(padded, {1, m, s, rest});
}

// Rows 0, s, 2s, ... of t [1, N, d]: the probed queries' rows.
Tensor probed_rows(const Tensor& t, int64_t s) { return s == 1 ? t : slice(rows_by(t, s), 2, 0, 1); }

// `dense` [1, N, H, hd] with rows 0, s, 2s, ... replaced by `rows` [ceil(N / s), H, hd].
Tensor with_probed_rows(const Tensor& dense, const Tensor& rows, int64_t s) {
  if (s == 1) return reshape(rows, dense.shape());
  const Tensor grouped = rows_by(dense, s);
  const Tensor merged = concat({reshape(rows, {1, grouped.size(1), 1, grouped.size(3)}), slice(grouped, 2, 1, s)}, 2);
  return slice(reshape(merged, {1, grouped.size(1) * s, dense.size(2), dense.size(3)}), 1, 0, dense.size(1));
}

// Computes the statistics of every attention call of one block run. On a GPU, with a keep
// fraction, self-attention's sparsified output comes from the same passes over the scores
// (diagnostics_cuda.h), for the probed queries; the sparse run of the block replays the dense
// output with those rows replaced, and its error is measured over them.
class StatsProbe : public AttentionProbe {
 public:
  StatsProbe(const TokenGrid& grid, const AttentionStatsOptions& options, double sparse_keep)
      : grid_(grid), options_(options), sparse_keep_(sparse_keep) {}
  Tensor observe(const AttentionCall& call) override {
    VDIT_CHECK(call.kind != AttentionKind::Joint, "diagnose: block " << call.block << ": joint attention is not yet diagnosed");
    const bool self = call.kind == AttentionKind::Self;
    const float scale = attention_scale(call.options, call.q);
    const std::vector<float> tau = temperatures(call.options, call.q.size(2));
    Tensor replaced;
    try {
      std::vector<HeadStats>& stats = self ? self_ : cross_;
#if VDITKIT_CUDA
      if (self && sparse_keep_ > 0.0 && call.q.is_cuda()) {
        StatsAndSparse both = attention_statistics_and_sparse_cuda(sample_heads(call.q), sample_heads(call.k), sample_heads(call.v),
                                                                   scale, tau, &grid_, options_, kept_keys(sparse_keep_, call.k.size(1)));
        stats = std::move(both.stats);
        replaced = attention(call.q, call.k, call.v, call.options);
        sparse_self_ = with_probed_rows(replaced, both.sparse, both.query_stride);
        sparse_stride_ = both.query_stride;
      }
#endif
      if (!replaced.defined())
        stats = attention_statistics(sample_heads(call.q), sample_heads(call.k), scale, tau, self ? &grid_ : nullptr, options_);
      (self ? self_value_norms_ : cross_value_norms_) = sink_value_norms(call.v, stats);
    } catch (const Error& e) {
      VDIT_FAIL("block " << call.block << " " << (self ? "self" : "cross") << "-attention: " << e.what());
    }
    return replaced;  // the dense output, where computed here
  }
  std::vector<HeadStats> self_, cross_;
  std::vector<std::vector<double>> self_value_norms_, cross_value_norms_;
  Tensor sparse_self_;         // undefined unless computed with the statistics
  int64_t sparse_stride_ = 1;  // its probed rows: 0, s, 2s, ...

 private:
  TokenGrid grid_;
  AttentionStatsOptions options_;
  double sparse_keep_;
};

// Puts a sparsified output computed earlier in the place of one kind of attention.
class ReplayProbe : public AttentionProbe {
 public:
  ReplayProbe(AttentionKind kind, Tensor out) : kind_(kind), out_(std::move(out)) {}
  Tensor observe(const AttentionCall& call) override { return call.kind == kind_ ? out_ : Tensor(); }

 private:
  AttentionKind kind_;
  Tensor out_;
};

// ||a - b|| / ||b - x||: how much of the block's own contribution (its output minus its input)
// the sparsified attention changes.
double relative_change(const Tensor& sparse, const Tensor& dense, const Tensor& input) {
  return std::sqrt(sum_squared_difference(sparse, dense) / std::max(sum_squared_difference(dense, input), 1e-30));
}

// Where a key sits: (frame, row, column) for video tokens, the text position (and whether it is
// padding) for context tokens.
std::string key_position(int64_t key, const TokenGrid* grid, int64_t context_tokens) {
  if (grid) {
    const int64_t per_frame = grid->height * grid->width;
    return "(" + std::to_string(key / per_frame) + "," + std::to_string(key % per_frame / grid->width) + "," +
           std::to_string(key % grid->width) + ")";
  }
  return "text " + std::to_string(key) + (key >= context_tokens ? " (padding)" : "");
}

// Adds one sample's statistics of one (timestep, block) into the report's running sums.
void accumulate(AttentionKindReport& r, size_t tb, int64_t heads, const std::vector<HeadStats>& stats,
                const std::vector<std::vector<double>>& value_norms, const TokenGrid* grid, int64_t context_tokens,
                bool first_sample, int64_t frames) {
  for (int64_t h = 0; h < heads; ++h) {
    const HeadStats& s = stats[h];
    const size_t i = tb * heads + h;
    r.entropy[i] += s.entropy;
    r.sink_mass[i] += s.sink_mass;
    r.top1_over_threshold[i] += s.top1_over_threshold;
    r.keys_for_90[i] += s.keys_for_90;
    r.keys_for_95[i] += s.keys_for_95;
    for (size_t f = 0; f < s.frame_distance_mass.size() && grid; ++f)
      r.frame_distance_mass[i * frames + f] += s.frame_distance_mass[f];
    if (!grid) r.first_key_mass[i] += s.first_key_mass;
    if (first_sample) {  // sink positions are those of the first probe sample
      r.sink_keys[i] = s.sink_keys;
      r.sink_value_norm[i] = value_norms[h];
      if (grid && !s.sink_keys.empty()) {
        const auto in_first_frame = std::count_if(s.sink_keys.begin(), s.sink_keys.end(), [&](int64_t key) {
          return key < grid->height * grid->width;
        });
        r.sink_first_frame[i] = static_cast<double>(in_first_frame) / static_cast<double>(s.sink_keys.size());
      }
      std::string where;
      for (int64_t key : s.sink_keys) where += (where.empty() ? "" : " ") + key_position(key, grid, context_tokens);
      r.sink_positions[i] = where;
      r.pooled_maps[i] = s.pooled_map;
      r.pooled_size = std::max(r.pooled_size, s.pooled_rows);
    }
  }
}

void size_report(AttentionKindReport& r, size_t tbh, size_t tb, int64_t frames, bool self) {
  for (std::vector<double>* v : {&r.entropy, &r.sink_mass, &r.top1_over_threshold, &r.keys_for_90, &r.keys_for_95})
    v->assign(tbh, 0.0);
  r.sparsify_error.assign(tb, 0.0);
  r.sink_keys.assign(tbh, {});
  r.sink_positions.assign(tbh, "");
  r.sink_value_norm.assign(tbh, {});
  (self ? r.sink_first_frame : r.first_key_mass).assign(tbh, 0.0);
  r.pooled_maps.assign(tbh, {});
  if (self) {
    r.frame_distance_mass.assign(tbh * frames, 0.0);
    r.structure_correlation.assign(tbh, 0.0);
  }
}

}  // namespace

DiagnosticsReport diagnose(const Model& model, const LatentDataset& data, const DiagnoseOptions& options,
                           const std::function<void(int64_t, int64_t)>& progress) {
  NoGradScope no_grad;
  const ModelFacts c = model.facts();
  const ProbeSet probe = probe_set(c, data, options.probe_samples, "diagnose");
  const int64_t samples = probe.samples;
  const TokenGrid& grid = probe.grid;
  const int64_t T = static_cast<int64_t>(options.sigmas.size()), B = c.num_blocks, H = c.num_heads;

  DiagnosticsReport report;
  report.sigmas = options.sigmas;
  report.blocks = B;
  report.heads = H;
  report.frames = grid.frames;
  report.probe_samples = samples;
  size_report(report.self_attn, T * B * H, T * B, grid.frames, true);
  size_report(report.cross_attn, T * B * H, T * B, grid.frames, false);
  // Every sample's pooled self-attention maps, for the cross-sample correlation.
  std::vector<std::vector<std::vector<double>>> maps(T * B * H);

  int64_t done = 0;
  for (int64_t t = 0; t < T; ++t) {
    const double sigma = options.sigmas[t];
    for (int64_t s = 0; s < samples; ++s) {
      const LatentSample sample = data.read(s);
      const std::unique_ptr<Model::Stage> stage = embed_probe(model, sample, s, sigma, options.noise_seed);
      TokenStreams x = std::move(stage->streams);
      for (int64_t b = 0; b < B; ++b) {
        StatsProbe stats(grid, options.stats, options.sparse_keep);
        TokenStreams dense = model.block_stage(static_cast<int>(b), x, *stage, &stats);
        const size_t tb = static_cast<size_t>(t * B + b);
        accumulate(report.self_attn, tb, H, stats.self_, stats.self_value_norms_, &grid, 0, s == 0, grid.frames);
        accumulate(report.cross_attn, tb, H, stats.cross_, stats.cross_value_norms_, nullptr, sample.context.size(0), s == 0,
                   grid.frames);
        for (int64_t h = 0; h < H; ++h) maps[tb * H + h].push_back(stats.self_[h].pooled_map);
        if (options.sparse_keep > 0.0) {
          for (AttentionKind kind : {AttentionKind::Self, AttentionKind::Cross}) {
            SparseProbe sparse(kind, options.sparse_keep);
            ReplayProbe replay(kind, stats.sparse_self_);
            const bool replayed = kind == AttentionKind::Self && stats.sparse_self_.defined();
            const Tensor changed = model.block_stage(static_cast<int>(b), x, *stage,
                                                     replayed ? static_cast<AttentionProbe*>(&replay) : &sparse).video;
            const int64_t s = replayed ? stats.sparse_stride_ : 1;  // the block is row-wise after self-attention
            (kind == AttentionKind::Self ? report.self_attn : report.cross_attn).sparsify_error[tb] +=
                relative_change(probed_rows(changed, s), probed_rows(dense.video, s), probed_rows(x.video, s));
          }
        }
        x = std::move(dense);
      }
      if (progress) progress(++done, T * samples);
    }
  }
  // Sums to means over samples; structure correlation as the mean over sample pairs.
  const double n = static_cast<double>(samples);
  for (AttentionKindReport* r : {&report.self_attn, &report.cross_attn}) {
    for (std::vector<double>* v : {&r->entropy, &r->sink_mass, &r->top1_over_threshold, &r->keys_for_90,
                                   &r->keys_for_95, &r->frame_distance_mass, &r->sparsify_error, &r->first_key_mass})
      for (double& value : *v) value /= n;
  }
  for (size_t i = 0; i < maps.size(); ++i) {
    double sum = 0.0;
    int pairs = 0;
    for (size_t a = 0; a < maps[i].size(); ++a)
      for (size_t b = a + 1; b < maps[i].size(); ++b) {
        const double r = pooled_map_correlation(maps[i][a], maps[i][b]);
        if (std::isfinite(r)) {
          sum += r;
          ++pairs;
        }
      }
    report.self_attn.structure_correlation[i] = pairs > 0 ? sum / pairs : NAN;
  }
  return report;
}

}  // namespace vdit
