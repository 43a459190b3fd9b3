#include "diagnostics/diagnose.h"

#include <algorithm>
#include <cmath>

#include "autograd/check.h"
#include "autograd/tape.h"
#include "diagnostics/attention_call.h"
#include "diagnostics/diagnostics_cuda.h"
#include "diagnostics/joint_attention.h"
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

// What one report kind of one block run measured: per head the statistics and each sink key's
// value norm, the label of a key, and (joint attention) the mean mass on text keys. No heads
// where the block has no such part (a joint block without text queries, or with fewer than two
// real text keys).
struct PartStats {
  std::vector<HeadStats> heads;
  std::vector<std::vector<double>> value_norms;
  std::vector<double> text_key_mass;
  std::function<std::string(int64_t)> label;
};

// Computes the statistics of every attention call of one block run: Wan's self- and
// cross-attention, or a joint attention's three parts (joint_attention.h) into the same kinds.
// On a GPU, with a keep fraction, self-attention's sparsified output comes from the same passes
// over the scores (diagnostics_cuda.h), for the probed queries; the sparse run of the block
// replays the dense output with those rows replaced, and its error is measured over them.
class StatsProbe : public AttentionProbe {
 public:
  StatsProbe(const TokenGrid& grid, int64_t context_tokens, const AttentionStatsOptions& options, double sparse_keep)
      : grid_(grid), context_tokens_(context_tokens), options_(options), sparse_keep_(sparse_keep) {}
  Tensor observe(const AttentionCall& call) override {
    if (call.kind == AttentionKind::Joint) {
      observe_joint(call);
      return {};
    }
    const bool self = call.kind == AttentionKind::Self;
    const float scale = attention_scale(call.options, call.q);
    const std::vector<float> tau = temperatures(call.options, call.q.size(2));
    Tensor replaced;
    PartStats& part = self ? self_ : cross_;
    try {
#if VDITKIT_CUDA
      if (self && sparse_keep_ > 0.0 && call.q.is_cuda()) {
        StatsAndSparse both = attention_statistics_and_sparse_cuda(sample_heads(call.q), sample_heads(call.k), sample_heads(call.v),
                                                                   scale, tau, &grid_, options_, kept_keys(sparse_keep_, call.k.size(1)));
        part.heads = std::move(both.stats);
        replaced = attention(call.q, call.k, call.v, call.options);
        sparse_self_ = with_probed_rows(replaced, both.sparse, both.query_stride);
        sparse_stride_ = both.query_stride;
      }
#endif
      if (!replaced.defined())
        part.heads = attention_statistics(sample_heads(call.q), sample_heads(call.k), scale, tau, self ? &grid_ : nullptr, options_);
      part.value_norms = sink_value_norms(call.v, part.heads);
    } catch (const Error& e) {
      VDIT_FAIL("block " << call.block << " " << (self ? "self" : "cross") << "-attention: " << e.what());
    }
    const int64_t context_tokens = context_tokens_;
    if (self)
      part.label = [grid = grid_](int64_t key) { return grid.position(key); };
    else
      part.label = [context_tokens](int64_t key) {
        return "text " + std::to_string(key) + (key >= context_tokens ? " (padding)" : "");
      };
    return replaced;  // the dense output, where computed here
  }
  PartStats self_, cross_, text_;
  Tensor sparse_self_;         // undefined unless computed with the statistics
  int64_t sparse_stride_ = 1;  // its probed rows: 0, s, 2s, ...

 private:
  void observe_joint(const AttentionCall& call) {
    try {
      JointStats joint = joint_attention_statistics(call, grid_, options_);
      const JointParts& parts = joint.parts;
      self_.heads = std::move(joint.video_to_video);
      self_.value_norms = sink_value_norms(parts.video_v, self_.heads);
      self_.label = [grid = grid_](int64_t key) { return grid.position(key); };
      cross_.heads = std::move(joint.video_to_text);
      if (!cross_.heads.empty()) cross_.value_norms = sink_value_norms(parts.text_v, cross_.heads);
      cross_.text_key_mass = std::move(joint.video_text_mass);
      cross_.label = [](int64_t key) { return "text " + std::to_string(key); };  // the real rows only
      text_.heads = std::move(joint.text_to_all);
      if (!text_.heads.empty()) text_.value_norms = sink_value_norms(parts.keys_v, text_.heads);
      text_.text_key_mass = std::move(joint.text_text_mass);
      text_.label = [order = parts.keys, grid = grid_](int64_t key) { return order.position(key, grid); };
    } catch (const Error& e) {
      VDIT_FAIL("block " << call.block << " joint attention: " << e.what());
    }
  }

  TokenGrid grid_;
  int64_t context_tokens_;
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

// The report kinds' parts of a block's attention: self_attn (Wan's self-attention, a joint
// attention's video-to-video part) has the token grid's locality and sinks' first-frame share,
// cross_attn the mass on text token 0.
enum class Part { Self, Cross, Text };

// Adds one sample's statistics of one (timestep, block) into the report's running sums; a part
// the block lacks adds NaN, so its means are NaN (not measured).
void accumulate(AttentionKindReport& r, size_t tb, int64_t heads, const PartStats& part, Part kind, const TokenGrid& grid,
                bool first_sample) {
  for (int64_t h = 0; h < heads; ++h) {
    const size_t i = tb * heads + h;
    if (!r.text_key_mass.empty()) r.text_key_mass[i] += part.text_key_mass.empty() ? NAN : part.text_key_mass[h];
    if (part.heads.empty()) {
      for (std::vector<double>* v : {&r.entropy, &r.sink_mass, &r.top1_over_threshold, &r.keys_for_90, &r.keys_for_95})
        (*v)[i] = NAN;
      if (kind == Part::Cross) r.first_key_mass[i] = NAN;
      continue;
    }
    const HeadStats& s = part.heads[h];
    r.entropy[i] += s.entropy;
    r.sink_mass[i] += s.sink_mass;
    r.top1_over_threshold[i] += s.top1_over_threshold;
    r.keys_for_90[i] += s.keys_for_90;
    r.keys_for_95[i] += s.keys_for_95;
    for (size_t f = 0; f < s.frame_distance_mass.size() && kind == Part::Self; ++f)
      r.frame_distance_mass[i * grid.frames + f] += s.frame_distance_mass[f];
    if (kind == Part::Cross) r.first_key_mass[i] += s.first_key_mass;
    if (first_sample) {  // sink positions are those of the first probe sample
      r.sink_keys[i] = s.sink_keys;
      r.sink_value_norm[i] = part.value_norms[h];
      if (kind == Part::Self && !s.sink_keys.empty()) {
        const auto in_first_frame = std::count_if(s.sink_keys.begin(), s.sink_keys.end(), [&](int64_t key) {
          return key < grid.height * grid.width;
        });
        r.sink_first_frame[i] = static_cast<double>(in_first_frame) / static_cast<double>(s.sink_keys.size());
      }
      std::string where;
      for (int64_t key : s.sink_keys) where += (where.empty() ? "" : " ") + part.label(key);
      r.sink_positions[i] = where;
      r.pooled_maps[i] = s.pooled_map;
      r.pooled_size = std::max(r.pooled_size, s.pooled_rows);
    }
  }
}

// Maps of heads whose part a block lacks (NaN statistics) as NaN cells, so that every map has
// the same size.
void fill_missing_maps(AttentionKindReport& r) {
  size_t cells = 0;
  for (const std::vector<double>& map : r.pooled_maps) cells = std::max(cells, map.size());
  for (std::vector<double>& map : r.pooled_maps)
    if (map.empty()) map.assign(cells, NAN);
}

void size_report(AttentionKindReport& r, size_t tbh, size_t tb, int64_t frames, Part kind, bool joint) {
  const bool self = kind == Part::Self;
  for (std::vector<double>* v : {&r.entropy, &r.sink_mass, &r.top1_over_threshold, &r.keys_for_90, &r.keys_for_95})
    v->assign(tbh, 0.0);
  r.sparsify_error.assign(tb, 0.0);
  r.sink_keys.assign(tbh, {});
  r.sink_positions.assign(tbh, "");
  r.sink_value_norm.assign(tbh, {});
  if (kind != Part::Text) (self ? r.sink_first_frame : r.first_key_mass).assign(tbh, 0.0);
  if (joint && kind != Part::Self) r.text_key_mass.assign(tbh, 0.0);
  if (joint && kind == Part::Cross) r.sparsify_error.clear();  // a joint attention is sparsified whole, under self_attn
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
  size_report(report.self_attn, T * B * H, T * B, grid.frames, Part::Self, c.joint_attention);
  size_report(report.cross_attn, T * B * H, T * B, grid.frames, Part::Cross, c.joint_attention);
  if (c.joint_attention) size_report(report.text_attn, T * B * H, T * B, grid.frames, Part::Text, true);
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
        StatsProbe stats(grid, sample.context.size(0), options.stats, options.sparse_keep);
        TokenStreams dense = model.block_stage(static_cast<int>(b), x, *stage, &stats);
        const size_t tb = static_cast<size_t>(t * B + b);
        accumulate(report.self_attn, tb, H, stats.self_, Part::Self, grid, s == 0);
        accumulate(report.cross_attn, tb, H, stats.cross_, Part::Cross, grid, s == 0);
        if (c.joint_attention) accumulate(report.text_attn, tb, H, stats.text_, Part::Text, grid, s == 0);
        for (int64_t h = 0; h < H; ++h) maps[tb * H + h].push_back(stats.self_.heads[h].pooled_map);
        if (options.sparse_keep > 0.0) {
          const std::vector<AttentionKind> sparsified = c.joint_attention ? std::vector{AttentionKind::Joint}
                                                                          : std::vector{AttentionKind::Self, AttentionKind::Cross};
          for (AttentionKind kind : sparsified) {
            SparseProbe sparse(kind, options.sparse_keep);
            ReplayProbe replay(kind, stats.sparse_self_);
            const bool replayed = kind == AttentionKind::Self && stats.sparse_self_.defined();
            const Tensor changed = model.block_stage(static_cast<int>(b), x, *stage,
                                                     replayed ? static_cast<AttentionProbe*>(&replay) : &sparse).video;
            const int64_t s = replayed ? stats.sparse_stride_ : 1;  // the block is row-wise after self-attention
            (kind == AttentionKind::Cross ? report.cross_attn : report.self_attn).sparsify_error[tb] +=
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
  for (AttentionKindReport* r : {&report.self_attn, &report.cross_attn, &report.text_attn}) {
    for (std::vector<double>* v : {&r->entropy, &r->sink_mass, &r->top1_over_threshold, &r->keys_for_90, &r->keys_for_95,
                                   &r->frame_distance_mass, &r->sparsify_error, &r->first_key_mass, &r->text_key_mass})
      for (double& value : *v) value /= n;
    fill_missing_maps(*r);
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
