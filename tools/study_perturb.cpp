// vditkit study perturb: self- (or joint) attention replaced by the identity or the uniform map per block
// (train/perturb_study.h), written as perturb.json, report.html (table and plots) and the samples.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "data/atomic_file.h"
#include "diagnostics/html_chart.h"
#include "tools/sampling_flags.h"
#include "tools/study.h"
#include "tools/study_output.h"
#include "train/layer_selection.h"
#include "train/perturb_study.h"
#include "train/progress.h"

namespace vdit::cli {
namespace {

std::string report_html(const PerturbStudy& study, const std::string& prompt, const std::string& mode,
                        const std::string& settings, bool pixels) {
  ChartSeries distance{"RMS to the unperturbed sample", "#b5367a", {}, {}, true, {}};
  ChartSeries scatter{"block", "#31688e", {}, {}, false, {}};
  for (const PerturbStudyRow& row : study.rows) {
    if (&row == &study.rows.back()) continue;  // the all-blocks row has no single block
    distance.x.push_back(row.blocks[0]);
    distance.y.push_back(row.rms_to_reference);
    scatter.x.push_back(row.entropy);
    scatter.y.push_back(row.rms_to_reference);
    scatter.labels.push_back(std::to_string(row.blocks[0]));
  }
  std::string html = "<h1>Self-attention replaced by the " + mode + " map, block by block</h1>\n<p>Prompt: <b>" +
                     html_escape(prompt) + "</b><br>" + html_escape(settings) +
                     "</p>\n<p>Each row samples from the unperturbed sample's noise with the named blocks' "
                     "self-attention (joint attention for Mochi-1 and CogVideoX-2b, text rows included) replaced in "
                     "every step and both guidance passes (identity: each token gets its own value, entropy 0; "
                     "uniform: every token gets the mean value over the unmasked keys, entropy 1). Entropy is the "
                     "block's mean self-attention entropy in the unperturbed run (of a joint attention its "
                     "video-to-video part), normalised by log N, as <code>diagnose</code> reports it.</p>\n";
  html += svg_chart({"perturbed block", "latent RMS distance to the unperturbed sample", {distance}, true});
  html += "<p>Distance against the block's entropy (points labelled by block):</p>\n";
  html += svg_chart({"mean self-attention entropy (unperturbed)", "latent RMS distance", {scatter}, false});
  html += "<table>\n<tr><th>sample</th><th>blocks replaced</th><th>entropy</th><th>RMS to unperturbed</th>";
  if (pixels) html += "<th>PSNR to unperturbed (dB, mean over frames)</th>";
  html += "</tr>\n";
  for (const PerturbStudyRow& row : study.rows) {
    std::string blocks;
    for (int b : row.blocks) blocks += std::string(blocks.empty() ? "" : ",") + std::to_string(b);
    html += "<tr><td>" + row.name + "</td><td>" + blocks + "</td><td>" + fixed(row.entropy, 4) + "</td><td>" +
            fixed(row.rms_to_reference, 4) + "</td>";
    if (pixels) html += "<td>" + fixed(mean_of(row.psnr_to_reference), 2) + "</td>";
    html += "</tr>\n";
  }
  html += "</table>\n<p>Samples: samples.h5" + std::string(pixels ? " and one MP4 per row" : "") + ".</p>\n";
  return html_page("vditkit study perturb", html);
}

}  // namespace

int run_study_perturb(int argc, char** argv) {
  std::string prompt, out, layers = "all", mode_name;
  int fps = 8;
  SamplingFlags flags;
  po::options_description options;
  flags.add_to(options);
  options.add_options()
      ("prompt", po::value(&prompt)->required(), "the prompt sampled")
      ("mode", po::value(&mode_name)->required(), "identity (each token attends to itself) or uniform (to all tokens equally)")
      ("layers", po::value(&layers)->default_value(layers), "blocks to perturb one at a time: 0,3,19, 10-12 or all")
      ("out", po::value(&out)->required(), "directory for perturb.json, report.html and the samples")
      ("fps", po::value(&fps)->default_value(fps), "frames per second of the MP4s (pixel-space models)");
  const po::variables_map vm = parse_options(
      argc, argv,
      "vditkit study perturb --model M --prompt TEXT --mode identity|uniform --out DIR [--layers all] [--device cuda]\n"
      "  Samples unperturbed, then with each chosen block's self- (or joint) attention replaced by the identity or the "
      "uniform map alone and all together, from one noise, in every step and both guidance passes.",
      options);
  if (vm.empty()) return 0;
  if (mode_name != "identity" && mode_name != "uniform")
    throw UsageError("--mode must be identity or uniform, got '" + mode_name + "'");
  const AttentionReplacement mode = mode_name == "identity" ? AttentionReplacement::Identity : AttentionReplacement::Uniform;
  flags.device.device();  // bad flags are reported before the model loads

  const std::unique_ptr<Model> model = flags.load_model();
  const ModelFacts c = model->facts();
  const std::vector<int> blocks = parse_block_list(layers, *model, "--layers");
  const bool pixels = c.in_channels == 3;
  std::filesystem::create_directories(out);
  const Shape shape = flags.latent_shape(c);
  const SamplingOptions& o = flags.options;
  std::cerr << "study perturb: " << blocks.size() + 2 << " samples (unperturbed, " << blocks.size()
            << " single blocks, all), " << o.steps << " steps each\n";
  ProgressLine line("study perturb", o.steps * static_cast<int64_t>(blocks.size() + 2));
  const PerturbStudy study =
      run_perturb_study(*model, shape, prompt.empty() ? Tensor() : prompt_context(prompt, c), blocks, mode, o,
                        [&](int64_t done, int64_t) { line.update(done, ""); });
  line.finish();

  std::vector<std::pair<std::string, Tensor>> samples{{"unperturbed", study.reference}};
  for (const PerturbStudyRow& row : study.rows)
    samples.emplace_back(&row == &study.rows.back() ? "all_blocks" : "block_" + std::to_string(row.blocks[0]), row.sample);
  write_study_samples(out, samples, fps);

  const std::string settings = "mode " + mode_name + ", " + flags.settings_text(shape);
  nlohmann::json json = {{"model", flags.model}, {"prompt", prompt},       {"mode", mode_name},
                         {"latent_shape", shape}, {"steps", o.steps},       {"guidance", o.guidance},
                         {"shift", o.shift},      {"seed", o.seed},         {"pixel_space", pixels},
                         {"entropy", study.entropy}, {"rows", nlohmann::json::array()}};
  for (const PerturbStudyRow& row : study.rows) {
    nlohmann::json r = {{"name", row.name}, {"blocks", row.blocks}, {"entropy", row.entropy},
                        {"rms_to_reference", row.rms_to_reference}};
    if (pixels) r["psnr_to_reference"] = row.psnr_to_reference;
    json["rows"].push_back(r);
  }
  write_text_atomically(out + "/perturb.json", json.dump(2) + "\n");
  write_text_atomically(out + "/report.html", report_html(study, prompt, mode_name, settings, pixels));

  std::printf("%-12s %9s %20s%s\n", "sample", "entropy", "RMS to unperturbed", pixels ? "  PSNR (dB)" : "");
  for (const PerturbStudyRow& row : study.rows)
    std::printf("%-12s %9s %20s%s\n", row.name.c_str(), fixed(row.entropy, 4).c_str(), fixed(row.rms_to_reference, 4).c_str(),
                pixels ? ("  " + fixed(mean_of(row.psnr_to_reference), 2)).c_str() : "");
  std::printf("wrote %s/perturb.json, %s/report.html, %s/samples.h5\n", out.c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace vdit::cli
