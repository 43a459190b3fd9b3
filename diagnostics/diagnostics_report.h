#pragma once
// What one attention diagnosis measured (issue 5), and its outputs: diagnostics.h5 (every
// number), summary.json (verdict and worst heads per block), heatmaps and report.html.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vdit {

struct Thresholds;

// Every number of one diagnosis, indexed [timestep][block][head] (t, b, h).
struct AttentionKindReport {      // one per report kind: self_attn, cross_attn, text_attn
  std::vector<double> entropy, sink_mass, top1_over_threshold, keys_for_90, keys_for_95; // size T*B*H
  std::vector<double> frame_distance_mass;   // T*B*H*F (self only; empty for cross)
  std::vector<double> sparsify_error;        // T*B (relative error of the block output)
  std::vector<std::vector<int64_t>> sink_keys;   // per (t,b,h): top sink key indices
  std::vector<std::string> sink_positions;       // per (t,b,h): "(f,row,col)" or "text 12 (padding)"
  // Sink anatomy (issue 16), of the first probe sample's sink keys as sink_keys lists them:
  // per (t,b,h), each sink key's value-vector norm over the mean value norm of the head's keys
  // (a sink with a tiny value adds next to nothing: a no-op that parks mass); NaN when every
  // value of the head is zero.
  std::vector<std::vector<double>> sink_value_norm;
  std::vector<double> sink_first_frame;  // T*B*H (self only): share of the head's sink keys in latent frame 0
  std::vector<double> first_key_mass;    // T*B*H (cross only): mean mass on text token 0
  // T*B*H, joint attention only (joint_attention.h): the mean joint-softmax mass on the real text
  // keys of the video queries (cross_attn; their mass on video keys is one minus it) and of the
  // text queries (text_attn).
  std::vector<double> text_key_mass;
  std::vector<double> structure_correlation;     // T*B*H: correlation of pooled maps across probe samples (self only)
  // Per (t,b,h), row-major with pooled_size rows (may be empty). Cross-attention maps have
  // fewer columns than rows when there are fewer text tokens than pooled rows.
  std::vector<std::vector<double>> pooled_maps;
  int64_t pooled_size = 0;

  bool measured() const { return !entropy.empty(); }
};

struct DiagnosticsReport {
  std::vector<double> sigmas;    // probe noise levels (T)
  int64_t blocks = 0, heads = 0, frames = 1;
  int64_t probe_samples = 0;
  // Wan's self- and cross-attention; for a joint attention (Mochi, CogVideoX; joint_attention.h)
  // self_attn is its video-to-video part, cross_attn video-to-text and text_attn text-to-all,
  // which only joint attention has (empty otherwise; NaN for a block without text queries).
  AttentionKindReport self_attn, cross_attn, text_attn;
  std::string model;             // what was diagnosed (path / step)

  int64_t timesteps() const { return static_cast<int64_t>(sigmas.size()); }
  size_t index(int64_t t, int64_t b, int64_t h) const { return static_cast<size_t>((t * blocks + b) * heads + h); }
};

// A per-head metric: its name in diagnostics.h5, summary.json and threshold files, where it
// lives, the range its heatmaps are coloured on (fixed, so before/after pictures compare) and
// which end is degenerate.
struct HeadMetric {
  const char* name;
  std::vector<double> AttentionKindReport::*values;
  double lo, hi;
  bool high_is_worse;
  bool self_only;
  const char* meaning;
};
const std::vector<HeadMetric>& head_metrics();
const HeadMetric& head_metric(const std::string& name);  // throws for an unknown name

// The kinds by their names in files ("self_attn", "cross_attn", "text_attn").
struct ReportKind {
  const char* name;
  AttentionKindReport DiagnosticsReport::*member;
};
const std::vector<ReportKind>& report_kinds();
const AttentionKindReport& kind_report(const DiagnosticsReport& report, const std::string& kind);  // by name

// Throws unless every vector of `report` has the size its counts imply (empty where optional).
void check_report_shape(const DiagnosticsReport& report, const std::string& source = "diagnostics report");

// Per (b, h): the mean over timesteps of a T*B*H metric.
std::vector<double> mean_over_timesteps(const DiagnosticsReport& report, const std::vector<double>& values);
// The mean over timesteps and heads of a T*B*H quantity at block b; NaN (not measured) left out;
// NaN when nothing is measured.
double block_mean_over_timesteps_and_heads(const DiagnosticsReport& report, const std::vector<double>& values, int b);

struct HeadRank {
  int block, head;
  double value;  // mean over timesteps
};
// The `count` worst heads of one metric of one kind (mean over timesteps), worst first; only
// those of `block` unless it is -1. NaN (not measured) ranks last.
std::vector<HeadRank> worst_heads(const DiagnosticsReport& report, const AttentionKindReport& kind,
                                  const HeadMetric& metric, size_t count, int block = -1);

// How many worst heads summary.json lists per metric and report.html pictures.
inline constexpr size_t kWorstHeads = 4;

// diagnostics.h5: datasets KIND/entropy, sink_mass, top1_over_threshold, keys_for_90, keys_for_95
// [T,B,H], KIND/sparsify_error [T,B], self_attn/frame_distance_mass [T,B,H,F],
// self_attn/structure_correlation [T,B,H], KIND/sink_keys [T,B,H,K] (-1 where a head has fewer),
// KIND/sink_value_norm [T,B,H,K] (NaN where a head has fewer sink keys), KIND/top_sink_stable
// [B,H] (written for readers; derived from sink_keys), self_attn/sink_first_frame [T,B,H],
// cross_attn/first_key_mass [T,B,H], cross_attn/text_key_mass and text_attn/text_key_mass [T,B,H]
// (joint attention),
// KIND/pooled_maps [T,B,H,P,cols]; attribute sink_positions on each KIND group (a JSON array);
// root attributes sigmas (a JSON array), model, probe_samples, blocks, heads, frames.
void write_diagnostics_h5(const std::string& path, const DiagnosticsReport& report);
DiagnosticsReport read_diagnostics_h5(const std::string& path);

// Per-block verdicts from thresholds (see thresholds.h) and the worst heads per metric.
nlohmann::json summarize(const DiagnosticsReport& report, const Thresholds& thresholds);

// Per (b, h): 1 when the head's top sink key is the same key at every timestep, 0 when it
// moves, -1 when a timestep has no sink key (first probe sample, as sink_keys).
std::vector<int> top_sink_stable(const DiagnosticsReport& report, const AttentionKindReport& kind);

// One block's sinks in one kind of attention, as summary.json, report.html and `diagnose` show
// them: the head with the highest sink mass (mean over timesteps), its top sink key (at the
// first timestep), whether that stays the top key at every timestep, its value norm over the
// mean value norm (mean over timesteps); and means over timesteps and heads of the share of
// sink keys in the first latent frame (self) and of the mass on text token 0 (cross). NaN
// where the report lacks the numbers.
struct SinkAnatomy {
  int head = 0;
  double sink_mass = NAN;
  int64_t top_key = -1;
  bool stable = false;
  double value_norm = NAN, first_frame_share = NAN, first_key_mass = NAN;
};
SinkAnatomy sink_anatomy(const DiagnosticsReport& report, const AttentionKindReport& kind, int block);

// Ranks blocks worst first: highest sink mass, then lowest entropy (self-attention, mean over
// timesteps, max over heads) — used by --layers auto:K. For a joint attention self_attn is its
// video-to-video part, so families rank on the same statistics.
std::vector<int> rank_blocks_worst_first(const DiagnosticsReport& report);

// Writes DIR/diagnostics.h5, DIR/summary.json, DIR/*.png heatmaps (a blocks x heads grid per
// metric per kind, mean over timesteps; pooled maps of the 4 worst heads), DIR/report.html.
// `before` (optional) is shown side by side.
void write_report(const std::string& dir, const DiagnosticsReport& report, const Thresholds& thresholds,
                  const DiagnosticsReport* before = nullptr, const std::string& extra_html = "");

}  // namespace vdit
