// The outputs of `study sparsity`: sparsity.h5 (every number) and report.html (the curves, the
// table and the sensitive blocks), readable offline.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "data/hdf5_file.h"
#include "diagnostics/html_chart.h"
#include "diagnostics/png.h"
#include "diagnostics/sparsity_study.h"

namespace vdit {

namespace {

void write_values(Hdf5File& file, const std::string& name, const std::vector<double>& values, const Shape& shape) {
  file.write(name, Tensor::from_vector(shape, std::vector<float>(values.begin(), values.end())));
}

std::string num(double v) { return (std::ostringstream() << std::setprecision(3) << v).str(); }

// One line per keep level over the blocks (so 30 blocks stay readable), the sensitive points
// labelled.
std::string per_block_chart(const SparsityStudy& st, const std::vector<double>& table,
                            const std::vector<SensitiveBlock>& sensitive, const std::string& y_label) {
  static const char* const colours[] = {"#440154", "#3b528b", "#21918c", "#5ec962", "#fde725", "#e15759", "#f28e2b", "#9c755f"};
  Chart chart{"block", y_label, {}, true};
  for (int64_t l = 0; l < st.levels(); ++l) {
    ChartSeries series{"keep " + num(st.keep[l]), colours[l % 8], {}, {}, true, {}};
    for (int64_t b = 0; b < st.blocks; ++b) {
      series.x.push_back(static_cast<double>(b));
      series.y.push_back(table[b * st.levels() + l]);
      bool flagged = false;
      for (const SensitiveBlock& s : sensitive)
        flagged |= s.block == b && std::find(s.levels.begin(), s.levels.end(), l) != s.levels.end();
      series.labels.push_back(flagged ? "sensitive" : "");
    }
    chart.series.push_back(series);
  }
  return svg_chart(chart);
}

std::string report_html(const SparsityStudy& st, const SensitivityRule& rule) {
  const std::vector<SensitiveBlock> sensitive = sensitive_blocks(st, rule);
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>vditkit sparsity study</title><style>"
       "body { font-family: sans-serif; margin: 2em; color: #222; max-width: 90em; }"
       "table { border-collapse: collapse; margin: 1em 0; }"
       "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }"
       "td.sensitive { background: #f5c2c2; }</style></head><body>\n";
  h << "<h1>Sparsity study</h1>\n<p>model " << html_escape(st.model) << "; " << st.probe_samples
    << " probe sample(s); noise levels (shift applied)";
  for (double s : st.sigmas) h << " " << num(s);
  h << ".</p>\n<p>Each query of a block's self-attention keeps its ceil(keep &times; keys) most probable keys, "
       "renormalised over them, in that block alone or in every block at once. Errors are "
       "sqrt(&Sigma;(masked &minus; dense)&sup2;) / sqrt(&Sigma; dense&sup2;) over every probe sample, noise level and "
       "element.</p>\n";
  h << "<h2>Sensitive blocks</h2>\n<p>Rule: a block is sensitive at a keep level when its velocity error exceeds both "
    << num(rule.ratio) << " &times; the median of the other blocks' errors at that level and that median + "
    << num(rule.floor) << ".</p>\n<ul>";
  if (sensitive.empty()) h << "<li>none</li>";
  for (const SensitiveBlock& s : sensitive) {
    h << "<li>block " << s.block << " at keep";
    for (int64_t l : s.levels)
      h << " " << num(st.keep[l]) << " (error " << num(st.velocity_error[s.block * st.levels() + l]) << ")";
    h << "</li>";
  }
  h << "</ul>\n<h2>Velocity error, one block sparsified</h2>\n"
    << per_block_chart(st, st.velocity_error, sensitive, "velocity error");
  Chart all{"fraction of keys kept per query", "velocity error", {{"every block sparsified", "#222222", st.keep,
                                                                   st.all_blocks_velocity_error, true, {}}}, false};
  h << "<h2>Velocity error, every block sparsified</h2>\n" << svg_chart(all);
  h << "<h2>Block output error</h2>\n" << per_block_chart(st, st.block_output_error, sensitive, "block output error");
  h << "<h2>Table</h2>\n<table><tr><th>block</th>";
  for (double k : st.keep) h << "<th>velocity, keep " << num(k) << "</th>";
  for (double k : st.keep) h << "<th>block output, keep " << num(k) << "</th>";
  h << "</tr>\n";
  for (int64_t b = 0; b < st.blocks; ++b) {
    h << "<tr><th>" << b << "</th>";
    for (int64_t l = 0; l < st.levels(); ++l) {
      bool flagged = false;
      for (const SensitiveBlock& s : sensitive)
        flagged |= s.block == b && std::find(s.levels.begin(), s.levels.end(), l) != s.levels.end();
      h << "<td" << (flagged ? " class=\"sensitive\"" : "") << ">" << num(st.velocity_error[b * st.levels() + l])
        << "</td>";
    }
    for (int64_t l = 0; l < st.levels(); ++l) h << "<td>" << num(st.block_output_error[b * st.levels() + l]) << "</td>";
    h << "</tr>\n";
  }
  h << "<tr><th>all</th>";
  for (double e : st.all_blocks_velocity_error) h << "<td>" << num(e) << "</td>";
  h << "</tr>\n</table>\n</body></html>\n";
  return h.str();
}

}  // namespace

void write_sparsity_report(const std::string& dir, const SparsityStudy& st, const SensitivityRule& rule) {
  std::filesystem::create_directories(dir);
  write_hdf5_atomically(dir + "/sparsity.h5", [&](Hdf5File& file) {
    write_values(file, "velocity_error", st.velocity_error, {st.blocks, st.levels()});
    write_values(file, "all_blocks_velocity_error", st.all_blocks_velocity_error, {st.levels()});
    write_values(file, "block_output_error", st.block_output_error, {st.blocks, st.levels()});
    write_values(file, "keep", st.keep, {st.levels()});
    write_values(file, "sigmas", st.sigmas, {static_cast<int64_t>(st.sigmas.size())});
    file.write_string("model", st.model);
    file.write_int("probe_samples", st.probe_samples);
    file.write_double("sensitive_ratio", rule.ratio);
    file.write_double("sensitive_floor", rule.floor);
  });
  write_file(dir + "/report.html", report_html(st, rule));
}

}  // namespace vdit
