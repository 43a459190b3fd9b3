#include "diagnostics/report_html.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iomanip>
#include <sstream>

#include "autograd/check.h"
#include "diagnostics/heatmap.h"
#include "diagnostics/html_chart.h"
#include "diagnostics/png.h"

namespace vdit {

namespace {

const char* const kStyle = R"css(
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 90em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.pass { background: #d8f0d8; } td.warn { background: #fbecb8; } td.fail { background: #f5c2c2; }
figure { display: inline-block; margin: 0.5em 1.5em 1em 0; vertical-align: top; }
figcaption { max-width: 20em; font-size: 0.9em; }
.pair { display: flex; gap: 0.8em; }
.pair img { border: 1px solid #999; image-rendering: pixelated; }
.label, .legend { font-size: 0.8em; color: #555; }
.legend { display: flex; align-items: center; gap: 0.4em; margin-top: 0.3em; }
.bar { display: inline-block; width: 12em; height: 0.8em; }
)css";

std::string number(double v) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

// "after", or "before → after" when there is a before.
std::string compared(const std::string& after, const std::string* before) {
  return before ? *before + " &rarr; " + after : after;
}

// The viridis scale from lo to hi, drawn by the browser from the same samples as the PNGs.
std::string legend(const std::string& lo, const std::string& hi) {
  const auto& samples = viridis_samples();
  std::ostringstream stops;
  for (size_t i = 0; i < samples.size(); ++i)
    stops << ", rgb(" << int(samples[i].r) << "," << int(samples[i].g) << "," << int(samples[i].b) << ") "
          << 100 * i / (samples.size() - 1) << "%";
  return "<div class=\"legend\"><span>" + lo + "</span><span class=\"bar\" style=\"background: linear-gradient(to right" +
         stops.str() + ")\"></span><span>" + hi + "</span></div>";
}

// A figure of one picture, or of its before and after side by side; empty names are left out.
std::string figure(const std::string& after, const std::string& before, const std::string& caption) {
  std::string html = "<figure><div class=\"pair\">";
  for (const auto& [file, label] : {std::pair{before, "before"}, std::pair{after, before.empty() ? "" : "after"}})
    if (!file.empty())
      html += "<div><img src=\"" + html_escape(file) + "\" alt=\"" + html_escape(file) + "\"><div class=\"label\">" +
              std::string(label) + "</div></div>";
  return html + "</div><figcaption>" + caption + "</figcaption></figure>\n";
}

// Where one report's pictures go: DIR/PREFIXname.png.
struct PictureDir {
  std::string dir, prefix;
  std::string write(const std::string& name, const std::vector<double>& values, int64_t rows, int64_t cols,
                    double lo, double hi) const {
    const std::string file = prefix + name + ".png";
    write_heatmap(dir + "/" + file, values, rows, cols, lo, hi);
    return file;
  }
};

std::string metric_picture(const PictureDir& pictures, const DiagnosticsReport& r, const ReportKind& kind,
                           const HeadMetric& m) {
  const std::vector<double>& values = r.*kind.member.*m.values;
  if (values.empty()) return "";
  return pictures.write(std::string(kind.name) + "_" + m.name, mean_over_timesteps(r, values), r.blocks, r.heads,
                        m.lo, m.hi);
}

// Blocks x frame distance: self-attention mass by |f_q - f_k|, mean over heads and timesteps.
std::string frame_distance_picture(const PictureDir& pictures, const DiagnosticsReport& r) {
  const std::vector<double>& mass = r.self_attn.frame_distance_mass;
  if (mass.empty()) return "";
  std::vector<double> grid(static_cast<size_t>(r.blocks * r.frames), 0.0);
  const double n = static_cast<double>(r.timesteps() * r.heads);
  for (int64_t t = 0; t < r.timesteps(); ++t)
    for (int64_t b = 0; b < r.blocks; ++b)
      for (int64_t h = 0; h < r.heads; ++h)
        for (int64_t f = 0; f < r.frames; ++f)
          grid[static_cast<size_t>(b * r.frames + f)] += mass[r.index(t, b, h) * r.frames + f] / n;
  return pictures.write("self_attn_frame_distance", grid, r.blocks, r.frames, 0.0, 1.0);
}

// A head's pooled self-attention map on a log scale down to 1/1000 of its largest cell, so that
// the faint locality bands stay visible beside a sink.
std::string pooled_picture(const PictureDir& pictures, const DiagnosticsReport& r, int64_t t, int b, int h) {
  const AttentionKindReport& k = r.self_attn;
  if (t >= r.timesteps() || k.pooled_maps.empty() || k.pooled_maps[r.index(t, b, h)].empty()) return "";
  const std::vector<double>& map = k.pooled_maps[r.index(t, b, h)];
  const double top = *std::max_element(map.begin(), map.end());
  if (!(top > 0.0)) return "";
  std::vector<double> logs;
  for (double v : map) logs.push_back(std::log10(std::max(v, top * 1e-3)));
  return pictures.write("pooled_b" + std::to_string(b) + "_h" + std::to_string(h) + "_t" + std::to_string(t), logs,
                        k.pooled_size, static_cast<int64_t>(map.size()) / k.pooled_size, std::log10(top) - 3.0,
                        std::log10(top));
}

// A per-block number shown in the verdict table.
struct BlockColumn {
  std::string header;
  std::function<double(const DiagnosticsReport&, int)> value;
};

BlockColumn worst_head_column(const char* kind, const char* metric) {
  return {std::string(kind) + " " + metric + " (worst head)", [=](const DiagnosticsReport& r, int b) {
            return worst_heads(r, kind_report(r, kind), head_metric(metric), 1, b).front().value;
          }};
}

BlockColumn sparsify_column(const char* kind) {
  return {std::string(kind) + " sparsify_error", [=](const DiagnosticsReport& r, int b) {
            const AttentionKindReport& k = kind_report(r, kind);
            if (k.sparsify_error.empty()) return double(NAN);
            double sum = 0.0;
            for (int64_t t = 0; t < r.timesteps(); ++t) sum += k.sparsify_error[static_cast<size_t>(t * r.blocks + b)];
            return sum / static_cast<double>(r.timesteps());
          }};
}

void verdict_table(std::ostream& html, const DiagnosticsReport& r, const Thresholds& thresholds,
                   const DiagnosticsReport* before) {
  const std::vector<BlockVerdict> after = check_thresholds(r, thresholds);
  const std::vector<BlockVerdict> earlier = before ? check_thresholds(*before, thresholds) : std::vector<BlockVerdict>{};
  const std::vector<BlockColumn> columns{worst_head_column("self_attn", "sink_mass"),
                                         worst_head_column("self_attn", "entropy"), sparsify_column("self_attn"),
                                         worst_head_column("cross_attn", "sink_mass"),
                                         worst_head_column("cross_attn", "entropy")};
  html << "<table class=\"verdicts\"><tr><th>block</th><th>verdict</th>";
  for (const BlockColumn& c : columns) html << "<th>" << c.header << "</th>";
  html << "<th>reasons</th></tr>\n";
  for (const BlockVerdict& v : after) {
    const std::string verdict = to_string(v.verdict);
    const std::string earlier_verdict = before ? to_string(earlier[v.block].verdict) : "";
    html << "<tr><td>" << v.block << "</td><td class=\"" << verdict << "\">"
         << compared(verdict, before ? &earlier_verdict : nullptr) << "</td>";
    for (const BlockColumn& c : columns) {
      const std::string earlier_value = before ? number(c.value(*before, v.block)) : "";
      html << "<td>" << compared(number(c.value(r, v.block)), before ? &earlier_value : nullptr) << "</td>";
    }
    html << "<td>";
    for (const std::string& reason : v.reasons) html << html_escape(reason) << "<br>";
    html << "</td></tr>\n";
  }
  html << "</table>\n";
}

void worst_heads_section(std::ostream& html, const DiagnosticsReport& r, const DiagnosticsReport* before,
                         const PictureDir& pictures, const PictureDir& before_pictures) {
  const HeadMetric& sink = head_metric("sink_mass");
  html << "<h2>Heads with the most sink mass (self-attention)</h2>\n<table><tr><th>block</th><th>head</th>"
          "<th>sink_mass</th><th>entropy</th><th>sink keys (frame, row, column) per sigma</th></tr>\n";
  const std::vector<HeadRank> heads = worst_heads(r, r.self_attn, sink, kWorstHeads);
  for (const HeadRank& head : heads) {
    const auto mean = [&](const DiagnosticsReport& report, const HeadMetric& m) {
      return number(mean_over_timesteps(report, report.self_attn.*m.values)[head.block * report.heads + head.head]);
    };
    const std::string sink_before = before ? mean(*before, sink) : "";
    const std::string entropy_before = before ? mean(*before, head_metric("entropy")) : "";
    html << "<tr><td>" << head.block << "</td><td>" << head.head << "</td><td>"
         << compared(mean(r, sink), before ? &sink_before : nullptr) << "</td><td>"
         << compared(mean(r, head_metric("entropy")), before ? &entropy_before : nullptr) << "</td><td>";
    for (int64_t t = 0; t < r.timesteps() && !r.self_attn.sink_positions.empty(); ++t)
      html << "sigma " << number(r.sigmas[t]) << ": " << html_escape(r.self_attn.sink_positions[r.index(t, head.block, head.head)])
           << "<br>";
    html << "</td></tr>\n";
  }
  html << "</table>\n<p>Pooled attention maps (rows: query groups, columns: key groups, in token order), log "
          "scale from 1/1000 of each map's largest cell to it.</p>\n";
  for (const HeadRank& head : heads)
    for (int64_t t = 0; t < r.timesteps(); ++t) {
      const std::string after = pooled_picture(pictures, r, t, head.block, head.head);
      if (after.empty()) continue;
      html << figure(after, before ? pooled_picture(before_pictures, *before, t, head.block, head.head) : "",
                     "block " + std::to_string(head.block) + ", head " + std::to_string(head.head) + ", sigma " +
                         number(r.sigmas[t]));
    }
}

// Per block, its strongest self-attention sink and what it is made of (sink_anatomy), and how
// much of cross-attention goes to text token 0 (a text-side sink).
void sink_anatomy_table(std::ostringstream& html, const DiagnosticsReport& r) {
  if (r.self_attn.sink_keys.empty()) return;
  html << "<h2>Sink anatomy</h2>\n<p>Per block, the self-attention head with the highest sink mass: its top sink key "
          "(first probe sample, first timestep), whether that key is the top sink at every timestep, and its value-vector "
          "norm over the mean value norm of the head's keys (a sink with a small value is a near no-op that parks mass). "
          "First-frame share: of every head's sink keys, the share in latent frame 0. Text token 0: the mean "
          "cross-attention mass on the first text token. Means over timesteps (and heads for the shares).</p>\n"
          "<table><tr><th>block</th><th>head</th><th>sink mass</th><th>top key</th><th>same key at every timestep</th>"
          "<th>value norm / mean</th><th>first-frame share</th><th>text token 0 mass</th></tr>\n";
  for (int b = 0; b < r.blocks; ++b) {
    const SinkAnatomy self = sink_anatomy(r, r.self_attn, b);
    const double text0 = r.cross_attn.sink_keys.empty() ? NAN : sink_anatomy(r, r.cross_attn, b).first_key_mass;
    const std::string where = r.self_attn.sink_positions.empty() ? "" : r.self_attn.sink_positions[r.index(0, b, self.head)];
    html << "<tr><td>" << b << "</td><td>" << self.head << "</td><td>" << number(self.sink_mass) << "</td><td>"
         << self.top_key << " " << html_escape(where.substr(0, where.find(' '))) << "</td><td>" << (self.stable ? "yes" : "no")
         << "</td><td>" << number(self.value_norm) << "</td><td>" << number(self.first_frame_share) << "</td><td>"
         << number(text0) << "</td></tr>\n";
  }
  html << "</table>\n";
}

// Joint attention (Mochi, CogVideoX): which report kind holds which part, and per block where
// the joint softmax's mass goes (means over heads and timesteps, NaN left out).
void joint_attention_table(std::ostringstream& html, const DiagnosticsReport& r) {
  if (r.cross_attn.text_key_mass.empty()) return;
  html << "<h2>Joint attention</h2>\n<p>Video and text share one attention here. self_attn is its video-to-video "
          "part (each video query's probabilities restricted to the video keys and renormalised), cross_attn its "
          "video-to-text part (restricted to the real text keys), text_attn its text-to-all part (the real text "
          "queries over every unmasked key). Text-key mass: the mean joint mass on the real text keys; n/a where a "
          "block has no text queries. Means over heads and timesteps.</p>\n<table><tr><th>block</th><th>video queries' "
          "text-key mass</th><th>text queries' text-key mass</th><th>text queries' entropy</th></tr>\n";
  for (int b = 0; b < r.blocks; ++b) {
    html << "<tr><td>" << b << "</td>";
    for (const std::vector<double>* values : {&r.cross_attn.text_key_mass, &r.text_attn.text_key_mass, &r.text_attn.entropy})
      html << "<td>" << number(block_mean_over_timesteps_and_heads(r, *values, b)) << "</td>";
    html << "</tr>\n";
  }
  html << "</table>\n";
}

}  // namespace

void write_report_html(const std::string& dir, const DiagnosticsReport& r, const Thresholds& thresholds,
                       const DiagnosticsReport* before, const std::string& extra_html) {
  VDIT_CHECK(!before || (before->blocks == r.blocks && before->heads == r.heads),
             "report: the before diagnosis has " << before->blocks << " blocks x " << before->heads << " heads, this one "
                                                 << r.blocks << " x " << r.heads << "; they cannot be compared");
  const PictureDir pictures{dir, ""}, before_pictures{dir, "before_"};
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vditkit attention diagnostics"
       << "</title><style>" << kStyle << "</style></head><body>\n<h1>Attention diagnostics</h1>\n<table>"
       << "<tr><th>model</th><td>" << html_escape(r.model) << "</td></tr>";
  if (before) html << "<tr><th>before</th><td>" << html_escape(before->model) << "</td></tr>";
  html << "<tr><th>sigmas</th><td>";
  for (double s : r.sigmas) html << number(s) << " ";
  html << "</td></tr><tr><th>blocks x heads</th><td>" << r.blocks << " x " << r.heads << "</td></tr><tr><th>frames"
       << "</th><td>" << r.frames << "</td></tr><tr><th>probe samples</th><td>" << r.probe_samples
       << "</td></tr></table>\n" << extra_html << "<h2>Verdicts per block</h2>\n<p>Numbers are means over the probe timesteps"
       << (before ? "; before &rarr; after" : "") << ".</p>\n";
  verdict_table(html, r, thresholds, before);
  sink_anatomy_table(html, r);
  joint_attention_table(html, r);

  for (const ReportKind& kind : report_kinds()) {
    if (!(r.*kind.member).measured()) continue;
    html << "<h2>" << kind.name << ": blocks (rows, top to bottom) x heads (columns)</h2>\n";
    for (const HeadMetric& m : head_metrics()) {
      const std::string after = metric_picture(pictures, r, kind, m);
      if (after.empty()) continue;
      html << figure(after, before ? metric_picture(before_pictures, *before, kind, m) : "",
                     "<b>" + std::string(m.name) + "</b>: " + html_escape(m.meaning) + ", mean over timesteps." +
                         legend(number(m.lo), number(m.hi)));
    }
  }
  const std::string frames = frame_distance_picture(pictures, r);
  if (!frames.empty())
    html << "<h2>Self-attention mass by frame distance</h2>\n"
         << figure(frames, before ? frame_distance_picture(before_pictures, *before) : "",
                   "rows: blocks; columns: |frame of query - frame of key| = 0, 1, ...; mean over heads and "
                   "timesteps." + legend("0", "1"));
  worst_heads_section(html, r, before, pictures, before_pictures);
  html << "</body></html>\n";
  write_file(dir + "/report.html", html.str());
}

}  // namespace vdit
