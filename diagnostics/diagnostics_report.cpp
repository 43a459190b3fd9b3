#include "diagnostics/diagnostics_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "autograd/check.h"
#include "autograd/tensor.h"
#include "data/hdf5_file.h"
#include "diagnostics/png.h"
#include "diagnostics/report_html.h"
#include "diagnostics/thresholds.h"

namespace vdit {

namespace {

// How bad a value is, larger worse; NaN (not measured) is never the worst.
double badness(const HeadMetric& metric, double value) {
  if (std::isnan(value)) return -std::numeric_limits<double>::infinity();
  return metric.high_is_worse ? value : -value;
}

void expect_size(const std::string& source, const std::string& what, size_t size, size_t expected, bool optional) {
  VDIT_CHECK(size == expected || (optional && size == 0),
             source << ": " << what << " has " << size << " entries, expected " << expected);
}

// float32 on disk, as every vditkit dataset: the statistics carry no more precision than that.
void write_values(Hdf5File& file, const std::string& name, const std::vector<double>& values, const Shape& shape) {
  file.write(name, Tensor::from_vector(shape, std::vector<float>(values.begin(), values.end())));
}

std::vector<double> read_values(const Hdf5File& file, const std::string& name, const Shape& shape) {
  VDIT_CHECK(file.shape(name) == shape, file.path() << ": dataset " << name << " has shape "
                                                    << to_string(file.shape(name)) << ", expected " << to_string(shape));
  const std::vector<float> values = file.read(name).to_vector();
  return {values.begin(), values.end()};
}

// Per-head lists (sink keys, their value norms) as [T,B,H,K] with `pad` where a head has fewer
// than K; float32 holds key indices exactly up to 2^24, far beyond any token count.
template <typename T>
void write_per_sink(Hdf5File& file, const std::string& name, const std::vector<std::vector<T>>& lists, Shape shape,
                    double pad) {
  size_t k = 0;
  for (const auto& head : lists) k = std::max(k, head.size());
  if (k == 0) return;
  shape.push_back(static_cast<int64_t>(k));
  std::vector<double> padded(lists.size() * k, pad);
  for (size_t i = 0; i < lists.size(); ++i) std::copy(lists[i].begin(), lists[i].end(), padded.begin() + i * k);
  write_values(file, name, padded, shape);
}

// Each head's sink value norms, as many as it has sink keys.
std::vector<std::vector<double>> read_sink_value_norms(const Hdf5File& file, const std::string& name, Shape shape,
                                                       const std::vector<std::vector<int64_t>>& keys) {
  shape.push_back(file.shape(name).empty() ? 0 : file.shape(name).back());
  const std::vector<double> padded = read_values(file, name, shape);
  const size_t k = static_cast<size_t>(shape.back());
  VDIT_CHECK(keys.size() * k == padded.size(), file.path() << ": dataset " << name << " has " << padded.size()
                                                            << " values for " << keys.size() << " heads' sink keys");
  std::vector<std::vector<double>> norms(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    VDIT_CHECK(keys[i].size() <= k, file.path() << ": dataset " << name << " has " << k << " values per head, sink_keys "
                                                << keys[i].size());
    norms[i].assign(padded.begin() + i * k, padded.begin() + i * k + keys[i].size());
  }
  return norms;
}

std::vector<std::vector<int64_t>> read_sink_keys(const Hdf5File& file, const std::string& name, Shape shape) {
  const Shape stored = file.shape(name);
  VDIT_CHECK(!stored.empty() && stored.back() >= 1, file.path() << ": dataset " << name << " has shape "
                                                                << to_string(stored) << ", expected [..., K] with K >= 1");
  shape.push_back(stored.back());
  const std::vector<double> padded = read_values(file, name, shape);
  const size_t k = static_cast<size_t>(shape.back());
  std::vector<std::vector<int64_t>> keys(padded.size() / k);
  for (size_t i = 0; i < padded.size(); ++i)
    if (padded[i] >= 0) keys[i / k].push_back(static_cast<int64_t>(padded[i]));
  return keys;
}

void write_kind(Hdf5File& file, const DiagnosticsReport& r, const ReportKind& kind) {
  const AttentionKindReport& k = r.*kind.member;
  const std::string g = std::string(kind.name) + "/";
  const Shape tbh{r.timesteps(), r.blocks, r.heads};
  for (const HeadMetric& m : head_metrics())
    if (!(k.*m.values).empty()) write_values(file, g + m.name, k.*m.values, tbh);
  if (!k.sparsify_error.empty()) write_values(file, g + "sparsify_error", k.sparsify_error, {r.timesteps(), r.blocks});
  if (!k.frame_distance_mass.empty())
    write_values(file, g + "frame_distance_mass", k.frame_distance_mass, {r.timesteps(), r.blocks, r.heads, r.frames});
  write_per_sink(file, g + "sink_keys", k.sink_keys, tbh, -1.0);
  write_per_sink(file, g + "sink_value_norm", k.sink_value_norm, tbh, NAN);
  if (!k.sink_keys.empty()) {
    const std::vector<int> stable = top_sink_stable(r, k);
    write_values(file, g + "top_sink_stable", std::vector<double>(stable.begin(), stable.end()), {r.blocks, r.heads});
  }
  if (!k.sink_first_frame.empty()) write_values(file, g + "sink_first_frame", k.sink_first_frame, tbh);
  if (!k.first_key_mass.empty()) write_values(file, g + "first_key_mass", k.first_key_mass, tbh);
  if (!k.text_key_mass.empty()) write_values(file, g + "text_key_mass", k.text_key_mass, tbh);
  if (!k.sink_positions.empty()) file.write_string("sink_positions", nlohmann::json(k.sink_positions).dump(), kind.name);
  if (!k.pooled_maps.empty() && !k.pooled_maps.front().empty()) {
    std::vector<double> maps;
    for (const auto& map : k.pooled_maps) maps.insert(maps.end(), map.begin(), map.end());
    const int64_t cols = static_cast<int64_t>(k.pooled_maps.front().size()) / k.pooled_size;
    write_values(file, g + "pooled_maps", maps, {r.timesteps(), r.blocks, r.heads, k.pooled_size, cols});
  }
}

void read_kind(const Hdf5File& file, DiagnosticsReport& r, const ReportKind& kind) {
  AttentionKindReport& k = r.*kind.member;
  const std::string g = std::string(kind.name) + "/";
  const Shape tbh{r.timesteps(), r.blocks, r.heads};
  for (const HeadMetric& m : head_metrics())
    if (file.has(g + m.name)) k.*m.values = read_values(file, g + m.name, tbh);
  if (file.has(g + "sparsify_error")) k.sparsify_error = read_values(file, g + "sparsify_error", {r.timesteps(), r.blocks});
  if (file.has(g + "frame_distance_mass"))
    k.frame_distance_mass =
        read_values(file, g + "frame_distance_mass", {r.timesteps(), r.blocks, r.heads, r.frames});
  if (file.has(g + "sink_keys")) k.sink_keys = read_sink_keys(file, g + "sink_keys", tbh);
  if (file.has(g + "sink_value_norm")) k.sink_value_norm = read_sink_value_norms(file, g + "sink_value_norm", tbh, k.sink_keys);
  if (file.has(g + "sink_first_frame")) k.sink_first_frame = read_values(file, g + "sink_first_frame", tbh);
  if (file.has(g + "first_key_mass")) k.first_key_mass = read_values(file, g + "first_key_mass", tbh);
  if (file.has(g + "text_key_mass")) k.text_key_mass = read_values(file, g + "text_key_mass", tbh);
  if (file.has_attribute("sink_positions", kind.name))
    k.sink_positions = nlohmann::json::parse(file.read_string("sink_positions", kind.name)).get<std::vector<std::string>>();
  if (file.has(g + "pooled_maps")) {
    const Shape shape = file.shape(g + "pooled_maps");
    VDIT_CHECK(shape.size() == 5, file.path() << ": dataset " << g << "pooled_maps has shape " << to_string(shape)
                                              << ", expected [T, B, H, rows, cols]");
    k.pooled_size = shape[3];
    const std::vector<double> maps = read_values(file, g + "pooled_maps", shape);
    const size_t cells = static_cast<size_t>(shape[3] * shape[4]);
    for (size_t i = 0; i < maps.size(); i += cells) k.pooled_maps.emplace_back(maps.begin() + i, maps.begin() + i + cells);
  }
}

// The per-block part of summary.json for one kind: its worst head per metric and its
// sparsification error, means over timesteps.
nlohmann::json block_summary(const DiagnosticsReport& r, const AttentionKindReport& k, int block) {
  nlohmann::json out = nlohmann::json::object();
  for (const HeadMetric& m : head_metrics()) {
    if ((k.*m.values).empty()) continue;
    const HeadRank worst = worst_heads(r, k, m, 1, block).front();
    out["worst_heads"][m.name] = {{"head", worst.head}, {"value", worst.value}};
  }
  if (!k.sparsify_error.empty()) {
    double sum = 0.0;
    for (int64_t t = 0; t < r.timesteps(); ++t) sum += k.sparsify_error[static_cast<size_t>(t * r.blocks + block)];
    out["sparsify_error"] = sum / static_cast<double>(r.timesteps());
  }
  if (!k.sink_keys.empty()) {
    const SinkAnatomy a = sink_anatomy(r, k, block);
    nlohmann::json& s = out["sink"] = {{"head", a.head}, {"top_key", a.top_key}, {"same_top_key_every_level", a.stable}};
    if (!std::isnan(a.value_norm)) s["top_key_value_norm"] = a.value_norm;
    if (!std::isnan(a.first_frame_share)) s["first_frame_share"] = a.first_frame_share;
    if (!std::isnan(a.first_key_mass)) s["text_token0_mass"] = a.first_key_mass;
  }
  if (!k.text_key_mass.empty()) out["text_key_mass"] = block_mean_over_timesteps_and_heads(r, k.text_key_mass, block);
  return out;
}

nlohmann::json head_summary(const DiagnosticsReport& r, const AttentionKindReport& k, const HeadRank& head) {
  nlohmann::json out = {{"block", head.block}, {"head", head.head}, {"value", head.value}};
  if (!k.sink_positions.empty()) {
    for (int64_t t = 0; t < r.timesteps(); ++t)
      out["sink_positions"].push_back(k.sink_positions[r.index(t, head.block, head.head)]);
  }
  return out;
}

}  // namespace

const std::vector<HeadMetric>& head_metrics() {
  using R = AttentionKindReport;
  static const std::vector<HeadMetric> metrics{
      {"entropy", &R::entropy, 0.0, 1.0, false, false,
       "mean over queries of the attention entropy over log(keys): 1 uniform, 0 all mass on one key"},
      {"sink_mass", &R::sink_mass, 0.0, 1.0, true, false, "the largest mean mass one key receives"},
      {"top1_over_threshold", &R::top1_over_threshold, 0.0, 1.0, true, false,
       "fraction of queries whose best key holds more than the sink threshold"},
      {"keys_for_90", &R::keys_for_90, 0.0, 1.0, false, false, "fraction of keys holding 90% of a query's mass"},
      {"keys_for_95", &R::keys_for_95, 0.0, 1.0, false, false, "fraction of keys holding 95% of a query's mass"},
      {"structure_correlation", &R::structure_correlation, -1.0, 1.0, false, true,
       "correlation of pooled maps across probe samples: 1 the same structure whatever the prompt"},
  };
  return metrics;
}

const HeadMetric& head_metric(const std::string& name) {
  for (const HeadMetric& m : head_metrics())
    if (name == m.name) return m;
  VDIT_FAIL("unknown attention metric \"" << name << "\"");
}

const std::vector<ReportKind>& report_kinds() {
  static const std::vector<ReportKind> kinds{{"self_attn", &DiagnosticsReport::self_attn},
                                             {"cross_attn", &DiagnosticsReport::cross_attn},
                                             {"text_attn", &DiagnosticsReport::text_attn}};
  return kinds;
}

const AttentionKindReport& kind_report(const DiagnosticsReport& report, const std::string& kind) {
  for (const ReportKind& k : report_kinds())
    if (kind == k.name) return report.*k.member;
  VDIT_FAIL("unknown attention kind \"" << kind << "\" (self_attn, cross_attn, text_attn)");
}

void check_report_shape(const DiagnosticsReport& r, const std::string& source) {
  VDIT_CHECK(r.timesteps() > 0 && r.blocks > 0 && r.heads > 0 && r.frames > 0,
             source << ": needs timesteps, blocks, heads and frames; got " << r.timesteps() << ", " << r.blocks << ", "
                    << r.heads << ", " << r.frames);
  const size_t tbh = static_cast<size_t>(r.timesteps() * r.blocks * r.heads);
  for (const ReportKind& kind : report_kinds()) {
    const AttentionKindReport& k = r.*kind.member;
    const std::string name = std::string(kind.name) + ".";
    const bool self = kind.member == &DiagnosticsReport::self_attn;
    const bool joint_only = kind.member == &DiagnosticsReport::text_attn;  // measured for joint attention only
    for (const HeadMetric& m : head_metrics())
      expect_size(source, name + m.name, (k.*m.values).size(), m.self_only && !self ? 0 : tbh, m.self_only || joint_only);
    expect_size(source, name + "frame_distance_mass", k.frame_distance_mass.size(),
                self ? tbh * static_cast<size_t>(r.frames) : 0, true);
    expect_size(source, name + "sparsify_error", k.sparsify_error.size(), static_cast<size_t>(r.timesteps() * r.blocks), true);
    expect_size(source, name + "sink_keys", k.sink_keys.size(), tbh, true);
    expect_size(source, name + "sink_positions", k.sink_positions.size(), tbh, true);
    expect_size(source, name + "sink_value_norm", k.sink_value_norm.size(), tbh, true);
    expect_size(source, name + "sink_first_frame", k.sink_first_frame.size(), tbh, true);
    expect_size(source, name + "first_key_mass", k.first_key_mass.size(), tbh, true);
    expect_size(source, name + "text_key_mass", k.text_key_mass.size(), self ? 0 : tbh, true);
    expect_size(source, name + "pooled_maps", k.pooled_maps.size(), tbh, true);
    for (const auto& map : k.pooled_maps)
      VDIT_CHECK(map.size() == k.pooled_maps.front().size() &&
                     (map.empty() || (k.pooled_size > 0 && map.size() % static_cast<size_t>(k.pooled_size) == 0)),
                 source << ": " << name << "pooled_maps must all have the same size, a multiple of pooled_size "
                        << k.pooled_size << "; found " << map.size() << " and " << k.pooled_maps.front().size());
  }
}

std::vector<double> mean_over_timesteps(const DiagnosticsReport& r, const std::vector<double>& values) {
  std::vector<double> means(static_cast<size_t>(r.blocks * r.heads), NAN);
  for (int64_t b = 0; b < r.blocks; ++b)
    for (int64_t h = 0; h < r.heads; ++h) {
      double sum = 0.0;
      int64_t n = 0;
      for (int64_t t = 0; t < r.timesteps(); ++t) {
        const double v = values[r.index(t, b, h)];
        if (std::isnan(v)) continue;  // not measured at this timestep
        sum += v;
        ++n;
      }
      if (n > 0) means[static_cast<size_t>(b * r.heads + h)] = sum / static_cast<double>(n);
    }
  return means;
}

double block_mean_over_timesteps_and_heads(const DiagnosticsReport& r, const std::vector<double>& values, int b) {
  double sum = 0.0;
  int64_t n = 0;
  for (int64_t t = 0; t < r.timesteps() && !values.empty(); ++t)
    for (int64_t h = 0; h < r.heads; ++h)
      if (const double v = values[r.index(t, b, h)]; !std::isnan(v)) {
        sum += v;
        ++n;
      }
  return n > 0 ? sum / static_cast<double>(n) : NAN;
}

std::vector<HeadRank> worst_heads(const DiagnosticsReport& r, const AttentionKindReport& k, const HeadMetric& metric,
                                  size_t count, int block) {
  const std::vector<double> means = mean_over_timesteps(r, k.*metric.values);
  std::vector<HeadRank> heads;
  for (int b = 0; b < r.blocks; ++b)
    for (int h = 0; h < r.heads; ++h)
      if (block < 0 || b == block) heads.push_back({b, h, means[static_cast<size_t>(b * r.heads + h)]});
  std::stable_sort(heads.begin(), heads.end(), [&](const HeadRank& x, const HeadRank& y) {
    return badness(metric, x.value) > badness(metric, y.value);
  });
  heads.resize(std::min(count, heads.size()));
  return heads;
}

void write_diagnostics_h5(const std::string& path, const DiagnosticsReport& report) {
  check_report_shape(report, path);
  write_hdf5_atomically(path, [&](Hdf5File& file) {
    for (const ReportKind& kind : report_kinds()) write_kind(file, report, kind);
    file.write_string("sigmas", nlohmann::json(report.sigmas).dump());
    file.write_string("model", report.model);
    file.write_int("probe_samples", report.probe_samples);
    file.write_int("blocks", report.blocks);
    file.write_int("heads", report.heads);
    file.write_int("frames", report.frames);
  });
}

DiagnosticsReport read_diagnostics_h5(const std::string& path) {
  const Hdf5File file(path, Hdf5File::Mode::Read);
  DiagnosticsReport r;
  const nlohmann::json sigmas = nlohmann::json::parse(file.read_string("sigmas"), nullptr, false);
  VDIT_CHECK(sigmas.is_array(), path << ": attribute sigmas must be a JSON array of numbers");
  r.sigmas = sigmas.get<std::vector<double>>();
  r.model = file.read_string("model");
  r.probe_samples = file.read_int("probe_samples");
  r.blocks = file.read_int("blocks");
  r.heads = file.read_int("heads");
  r.frames = file.read_int("frames");
  for (const ReportKind& kind : report_kinds()) read_kind(file, r, kind);
  check_report_shape(r, path);
  return r;
}

std::vector<int> top_sink_stable(const DiagnosticsReport& r, const AttentionKindReport& k) {
  std::vector<int> stable(static_cast<size_t>(r.blocks * r.heads), 1);
  for (int64_t b = 0; b < r.blocks; ++b)
    for (int64_t h = 0; h < r.heads; ++h) {
      int& s = stable[static_cast<size_t>(b * r.heads + h)];
      const std::vector<int64_t>& first = k.sink_keys[r.index(0, b, h)];
      for (int64_t t = 0; t < r.timesteps(); ++t) {
        const std::vector<int64_t>& keys = k.sink_keys[r.index(t, b, h)];
        if (keys.empty() || first.empty()) {
          s = -1;
          break;
        }
        if (keys[0] != first[0]) s = 0;
      }
    }
  return stable;
}

SinkAnatomy sink_anatomy(const DiagnosticsReport& r, const AttentionKindReport& k, int block) {
  SinkAnatomy a;
  a.head = worst_heads(r, k, head_metric("sink_mass"), 1, block).front().head;
  a.sink_mass = mean_over_timesteps(r, k.sink_mass)[static_cast<size_t>(block * r.heads + a.head)];
  const std::vector<int64_t>& first = k.sink_keys[r.index(0, block, a.head)];
  a.top_key = first.empty() ? -1 : first[0];
  a.stable = top_sink_stable(r, k)[static_cast<size_t>(block * r.heads + a.head)] == 1;
  // Means over timesteps (value norm: of the head's top sink; the shares: over every head too).
  double norm = 0.0, frame = 0.0, mass = 0.0;
  for (int64_t t = 0; t < r.timesteps(); ++t) {
    if (!k.sink_value_norm.empty()) {
      const std::vector<double>& v = k.sink_value_norm[r.index(t, block, a.head)];
      norm += v.empty() ? NAN : v[0];
    }
    for (int64_t h = 0; h < r.heads; ++h) {
      if (!k.sink_first_frame.empty()) frame += k.sink_first_frame[r.index(t, block, h)];
      if (!k.first_key_mass.empty()) mass += k.first_key_mass[r.index(t, block, h)];
    }
  }
  const double T = static_cast<double>(r.timesteps()), TH = T * static_cast<double>(r.heads);
  if (!k.sink_value_norm.empty()) a.value_norm = norm / T;
  if (!k.sink_first_frame.empty()) a.first_frame_share = frame / TH;
  if (!k.first_key_mass.empty()) a.first_key_mass = mass / TH;
  return a;
}

std::vector<int> rank_blocks_worst_first(const DiagnosticsReport& report) {
  check_report_shape(report);
  const HeadMetric& sink = head_metric("sink_mass");
  const HeadMetric& entropy = head_metric("entropy");
  // Per block: its worst head's badness by sink mass, then by entropy.
  std::vector<std::pair<double, double>> score(static_cast<size_t>(report.blocks));
  for (int b = 0; b < report.blocks; ++b)
    score[b] = {badness(sink, worst_heads(report, report.self_attn, sink, 1, b).front().value),
                badness(entropy, worst_heads(report, report.self_attn, entropy, 1, b).front().value)};
  std::vector<int> order(static_cast<size_t>(report.blocks));
  for (int b = 0; b < report.blocks; ++b) order[b] = b;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return score[x] > score[y]; });
  return order;
}

nlohmann::json summarize(const DiagnosticsReport& report, const Thresholds& thresholds) {
  const std::vector<BlockVerdict> verdicts = check_thresholds(report, thresholds);
  Verdict overall = Verdict::Pass;
  nlohmann::json per_block = nlohmann::json::array();
  for (const BlockVerdict& v : verdicts) {
    nlohmann::json block = {{"block", v.block}, {"verdict", to_string(v.verdict)}, {"reasons", v.reasons}};
    for (const ReportKind& kind : report_kinds())
      if ((report.*kind.member).measured()) block[kind.name] = block_summary(report, report.*kind.member, v.block);
    per_block.push_back(std::move(block));
    overall = std::max(overall, v.verdict);
  }
  nlohmann::json worst = nlohmann::json::object();
  for (const ReportKind& kind : report_kinds()) {
    const AttentionKindReport& k = report.*kind.member;
    if (!k.measured()) continue;
    for (const HeadMetric& m : head_metrics()) {
      if ((k.*m.values).empty()) continue;
      nlohmann::json& list = worst[kind.name][m.name] = nlohmann::json::array();
      for (const HeadRank& head : worst_heads(report, k, m, kWorstHeads)) list.push_back(head_summary(report, k, head));
    }
  }
  return {{"model", report.model},
          {"sigmas", report.sigmas},
          {"blocks", report.blocks},
          {"heads", report.heads},
          {"frames", report.frames},
          {"probe_samples", report.probe_samples},
          {"verdict", to_string(overall)},
          {"blocks_worst_first", rank_blocks_worst_first(report)},
          {"per_block", std::move(per_block)},
          {"worst_heads", std::move(worst)}};
}

void write_report(const std::string& dir, const DiagnosticsReport& report, const Thresholds& thresholds,
                  const DiagnosticsReport* before, const std::string& extra_html) {
  std::filesystem::create_directories(dir);
  write_diagnostics_h5(dir + "/diagnostics.h5", report);
  write_file(dir + "/summary.json", summarize(report, thresholds).dump(2) + "\n");
  write_report_html(dir, report, thresholds, before, extra_html);
}

}  // namespace vdit
