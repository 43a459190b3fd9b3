#include "diagnostics/diagnose.h"

#include <cmath>

#include "autograd/check.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "diagnostics/attention_call.h"
#include "diagnostics/sparse_attention.h"

namespace vdit {

namespace {

// Computes the statistics of every attention call of one block run.
class StatsProbe : public AttentionProbe {
 public:
  StatsProbe(const TokenGrid& grid, const AttentionStatsOptions& options) : grid_(grid), options_(options) {}
  Tensor observe(const AttentionCall& call) override {
    const bool self = call.kind == AttentionKind::Self;
    try {
      (self ? self_ : cross_) = attention_statistics(sample_heads(call.q), sample_heads(call.k), attention_scale(call.options, call.q),
                             temperatures(call.options, call.q.size(2)), self ? &grid_ : nullptr, options_);
    } catch (const Error& e) {
      VDIT_FAIL("block " << call.block << " " << (self ? "self" : "cross") << "-attention: " << e.what());
    }
    return {};
  }
  std::vector<HeadStats> self_, cross_;

 private:
  TokenGrid grid_;
  AttentionStatsOptions options_;
};

// Replaces one kind of attention with its sparsified version.
class SparseProbe : public AttentionProbe {
 public:
  SparseProbe(AttentionKind kind, double keep) : kind_(kind), keep_(keep) {}
  Tensor observe(const AttentionCall& call) override {
    if (call.kind != kind_) return {};
    return sparse_attention(call.q, call.k, call.v, attention_scale(call.options, call.q),
                            temperatures(call.options, call.q.size(2)), keep_);
  }

 private:
  AttentionKind kind_;
  double keep_;
};

// ||a - b|| / ||b - x||: how much of the block's own contribution (its output minus its input)
// the sparsified attention changes. On a GPU the two sums of squares run there (fp32) and only
// they come back; on the CPU they are summed in double.
double relative_change(const Tensor& sparse, const Tensor& dense, const Tensor& input) {
  if (dense.is_cuda()) {
    const Tensor d = dense.to_f32();
    const double diff = sum_all(square(sub(sparse.to_f32(), d))).item();
    const double own = sum_all(square(sub(d, input.to_f32()))).item();
    return std::sqrt(diff / std::max(own, 1e-30));
  }
  const std::vector<float> s = sparse.to_vector(), d = dense.to_vector(), x = input.to_vector();
  double diff = 0.0, own = 0.0;
  for (size_t i = 0; i < d.size(); ++i) {
    diff += (static_cast<double>(s[i]) - d[i]) * (static_cast<double>(s[i]) - d[i]);
    own += (static_cast<double>(d[i]) - x[i]) * (static_cast<double>(d[i]) - x[i]);
  }
  return std::sqrt(diff / std::max(own, 1e-30));
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
                const TokenGrid* grid, int64_t context_tokens, bool first_sample, int64_t frames) {
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
    if (first_sample) {  // sink positions are those of the first probe sample
      r.sink_keys[i] = s.sink_keys;
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
  r.pooled_maps.assign(tbh, {});
  if (self) {
    r.frame_distance_mass.assign(tbh * frames, 0.0);
    r.structure_correlation.assign(tbh, 0.0);
  }
}

}  // namespace

DiagnosticsReport diagnose(const VDiT& model, const LatentDataset& data, const DiagnoseOptions& options,
                           const std::function<void(int64_t, int64_t)>& progress) {
  NoGradScope no_grad;
  const VDiTConfig& c = model.config();
  const int64_t samples = std::min(options.probe_samples, data.size());
  VDIT_CHECK(samples > 0, "diagnose: no probe samples (the dataset is empty or --probe-samples is 0)");
  const Shape& first = data.latent_shape(0);
  for (int64_t s = 1; s < samples; ++s)
    VDIT_CHECK(data.latent_shape(s) == first, "diagnose: probe samples must share one latent shape; "
                                                  << data.where(s) << " is " << to_string(data.latent_shape(s))
                                                  << ", " << data.where(0) << " is " << to_string(first));
  const TokenGrid grid{first[1] / c.patch_size[0], first[2] / c.patch_size[1], first[3] / c.patch_size[2]};
  const int64_t T = static_cast<int64_t>(options.sigmas.size()), B = c.num_layers, H = c.num_heads;

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
      Shape latent_shape = sample.latents.shape(), context_shape = sample.context.shape();
      latent_shape.insert(latent_shape.begin(), 1);
      context_shape.insert(context_shape.begin(), 1);
      Rng rng(options.noise_seed + static_cast<uint64_t>(s));
      const Tensor noise = rng.normal_tensor(latent_shape);
      const Tensor x_sigma = add(scale(reshape(sample.latents, latent_shape), static_cast<float>(1.0 - sigma)),
                                 scale(noise, static_cast<float>(sigma)));
      const VDiT::Embedded embedded =
          model.embed(x_sigma.to(model.device()), {1000.0 * sigma}, reshape(sample.context, context_shape).to(model.device()));
      Tensor x = embedded.tokens;
      for (int64_t b = 0; b < B; ++b) {
        StatsProbe stats(grid, options.stats);
        const Tensor dense = model.run_block(static_cast<int>(b), x, embedded, &stats);
        const size_t tb = static_cast<size_t>(t * B + b);
        accumulate(report.self_attn, tb, H, stats.self_, &grid, 0, s == 0, grid.frames);
        accumulate(report.cross_attn, tb, H, stats.cross_, nullptr, sample.context.size(0), s == 0, grid.frames);
        for (int64_t h = 0; h < H; ++h) maps[tb * H + h].push_back(stats.self_[h].pooled_map);
        if (options.sparse_keep > 0.0) {
          for (AttentionKind kind : {AttentionKind::Self, AttentionKind::Cross}) {
            SparseProbe sparse(kind, options.sparse_keep);
            const Tensor changed = model.run_block(static_cast<int>(b), x, embedded, &sparse);
            (kind == AttentionKind::Self ? report.self_attn : report.cross_attn).sparsify_error[tb] +=
                relative_change(changed, dense, x);
          }
        }
        x = dense;
      }
      if (progress) progress(++done, T * samples);
    }
  }
  // Sums to means over samples; structure correlation as the mean over sample pairs.
  const double n = static_cast<double>(samples);
  for (AttentionKindReport* r : {&report.self_attn, &report.cross_attn}) {
    for (std::vector<double>* v : {&r->entropy, &r->sink_mass, &r->top1_over_threshold, &r->keys_for_90,
                                   &r->keys_for_95, &r->frame_distance_mass, &r->sparsify_error})
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
