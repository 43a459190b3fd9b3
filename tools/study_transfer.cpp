// vditkit study transfer: the per-block attention-map transfer study (train/transfer_study.h),
// written as transfer.json, report.html (table and plot) and the samples.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "data/atomic_file.h"
#include "diagnostics/html_chart.h"
#include "tools/sampling_flags.h"
#include "tools/study.h"
#include "tools/study_output.h"
#include "train/layer_selection.h"
#include "train/progress.h"
#include "train/transfer_study.h"

namespace vdit::cli {
namespace {

nlohmann::json comparison_json(const SampleComparison& c) {
  nlohmann::json j = {{"rms_to_source", c.rms_to_source}, {"rms_to_target", c.rms_to_target}};
  if (!c.psnr_to_source.empty()) {  // identical frames give +inf, which JSON writes as null
    j["psnr_to_source"] = c.psnr_to_source;
    j["psnr_to_target"] = c.psnr_to_target;
  }
  return j;
}

std::string table_row(const std::string& name, const std::string& blocks, const SampleComparison& c, bool pixels) {
  std::string row = "<tr><td>" + name + "</td><td>" + blocks + "</td><td>" + fixed(c.rms_to_source, 4) + "</td><td>" +
                    fixed(c.rms_to_target, 4) + "</td>";
  if (pixels) row += "<td>" + fixed(mean_of(c.psnr_to_source), 2) + "</td><td>" + fixed(mean_of(c.psnr_to_target), 2) + "</td>";
  return row + "</tr>\n";
}

std::string report_html(const TransferStudy& study, const std::string& source, const std::string& target,
                        const std::string& settings, bool pixels) {
  Chart chart{"transferred block", "latent RMS distance", {}, true};
  ChartSeries to_source{"to the source", "#b5367a", {}, {}, true, {}}, to_target{"to the plain target", "#31688e", {}, {}, true, {}};
  ChartSeries plain{"plain target to the source", "#999999", {}, {}, true, {}};
  for (const TransferStudyRow& row : study.rows) {
    if (row.blocks.size() != 1) continue;
    for (ChartSeries* s : {&to_source, &to_target, &plain}) s->x.push_back(row.blocks[0]);
    to_source.y.push_back(row.comparison.rms_to_source);
    to_target.y.push_back(row.comparison.rms_to_target);
    plain.y.push_back(study.target_comparison.rms_to_source);
  }
  chart.series = {to_source, to_target, plain};
  std::string html =
      "<h1>Attention-map transfer, block by block</h1>\n<p>Source prompt: <b>" +
                     html_escape(source) + "</b><br>Target prompt: <b>" + html_escape(target) + "</b><br>" +
                     html_escape(settings) +
                     "</p>\n<p>Each row is the target sampled from the source's noise with the named blocks' "
                     "self-attention maps (joint attention maps for Mochi-1 and CogVideoX-2b, text rows included) taken from "
                     "the source (its own values), in both guidance passes. A block "
                     "that pulls the result toward the source (small distance to the source, large to the plain "
                     "target) carries the generation's structure.</p>\n";
  html += svg_chart(chart);
  html += "<table>\n<tr><th>sample</th><th>blocks transferred</th><th>RMS to source</th><th>RMS to plain target</th>";
  if (pixels) html += "<th>PSNR to source (dB, mean over frames)</th><th>PSNR to plain target (dB)</th>";
  html += "</tr>\n" + table_row("plain target", "none", study.target_comparison, pixels);
  for (const TransferStudyRow& row : study.rows) {
    std::string blocks;
    for (int b : row.blocks) blocks += std::string(blocks.empty() ? "" : ",") + std::to_string(b);
    html += table_row(row.name, blocks, row.comparison, pixels);
  }
  html += "</table>\n<p>Samples: samples.h5" + std::string(pixels ? " and one MP4 per row" : "") + ".</p>\n";
  return html_page("vditkit study transfer", html);
}

}  // namespace

int run_study_transfer(int argc, char** argv) {
  std::string source, target, out, blocks_spec = "all", steps_spec = "all";
  int fps = 8;
  SamplingFlags flags;
  po::options_description options;
  flags.add_to(options);
  options.add_options()
      ("prompt", po::value(&source)->required(), "the source prompt, whose self- (or joint) attention maps are transferred")
      ("target", po::value(&target)->required(), "the target prompt, sampled with them")
      ("out", po::value(&out)->required(), "directory for transfer.json, report.html and the samples")
      ("blocks", po::value(&blocks_spec)->default_value(blocks_spec), "blocks to transfer one at a time: 0,3,19, 10-12 or all")
      ("transfer-steps", po::value(&steps_spec)->default_value(steps_spec),
       "denoising steps that transfer: A-B, A or all (counted from 1)")
      ("fps", po::value(&fps)->default_value(fps), "frames per second of the MP4s (pixel-space models)");
  const po::variables_map vm = parse_options(
      argc, argv,
      "vditkit study transfer --model M --prompt SOURCE --target TARGET --out DIR [--blocks all] [--device cuda]\n"
      "  Samples the source, the plain target, the target with each block's self- (or joint) attention map transferred "
      "from the source alone and with all of them, from one noise; with guidance the maps transfer in both "
      "the conditional and the unconditional pass.",
      options);
  if (vm.empty()) return 0;
  if (source.empty() || target.empty()) throw UsageError("--prompt and --target must not be empty");
  flags.device.device();  // bad flags are reported before the model loads
  const TransferSteps steps = parse_transfer_steps(steps_spec, flags.options.steps);

  const std::unique_ptr<Model> model = flags.load_model();
  const ModelFacts c = model->facts();
  const std::vector<int> blocks = parse_block_list(blocks_spec, *model, "--blocks");
  const bool pixels = c.in_channels == 3;
  std::filesystem::create_directories(out);
  const Shape shape = flags.latent_shape(c);
  const SamplingOptions& o = flags.options;
  std::cerr << "study transfer: " << blocks.size() + 3 << " samples in lockstep (source, plain target, " << blocks.size()
            << " single blocks, all), " << o.steps << " steps\n";
  ProgressLine line("study transfer", o.steps);
  const TransferStudy study = run_transfer_study(*model, shape, prompt_context(source, c), prompt_context(target, c),
                                                 blocks, o, steps, [&](int64_t step, int64_t) { line.update(step, ""); });
  line.finish();

  std::vector<std::pair<std::string, Tensor>> samples{{"source", study.source}, {"target", study.target}};
  for (const TransferStudyRow& row : study.rows)
    samples.emplace_back(&row == &study.rows.back() ? "all_blocks" : "block_" + std::to_string(row.blocks[0]), row.sample);
  write_study_samples(out, samples, fps);

  const std::string settings = flags.settings_text(shape) + ", transfer steps " + steps_spec;
  nlohmann::json json = {{"model", flags.model},     {"source_prompt", source},       {"target_prompt", target},
                         {"latent_shape", shape},    {"steps", o.steps},              {"guidance", o.guidance},
                         {"shift", o.shift},         {"seed", o.seed},                {"transfer_steps", steps_spec},
                         {"pixel_space", pixels},    {"plain_target", comparison_json(study.target_comparison)},
                         {"rows", nlohmann::json::array()}};
  for (const TransferStudyRow& row : study.rows) {
    nlohmann::json r = comparison_json(row.comparison);
    r["name"] = row.name;
    r["blocks"] = row.blocks;
    json["rows"].push_back(r);
  }
  write_text_atomically(out + "/transfer.json", json.dump(2) + "\n");
  write_text_atomically(out + "/report.html", report_html(study, source, target, settings, pixels));

  std::printf("%-14s %14s %16s%s\n", "sample", "RMS to source", "RMS to target", pixels ? "  PSNR to source (dB)" : "");
  auto print = [&](const std::string& name, const SampleComparison& cmp) {
    std::printf("%-14s %14s %16s%s\n", name.c_str(), fixed(cmp.rms_to_source, 4).c_str(), fixed(cmp.rms_to_target, 4).c_str(),
                pixels ? ("  " + fixed(mean_of(cmp.psnr_to_source), 2)).c_str() : "");
  };
  print("plain target", study.target_comparison);
  for (const TransferStudyRow& row : study.rows) print(row.name, row.comparison);
  std::printf("wrote %s/transfer.json, %s/report.html, %s/samples.h5\n", out.c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace vdit::cli
