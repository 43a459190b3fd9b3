// vditkit study sparsity: per-block sparsification curves on diagnose's probe set, written as
// sparsity.h5 and report.html, with the sensitive blocks printed.
#include <cstdio>
#include <iostream>

#include "diagnostics/sparsity_study.h"
#include "tools/device_flag.h"
#include "tools/diagnose_flags.h"
#include "tools/study.h"
#include "train/flow_matching.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace vdit::cli {

int run_study_sparsity(int argc, char** argv) {
  std::string model_path, config, adapter, set_temperature, out, keep = "0.9,0.7,0.5,0.3,0.1", timesteps = "0.9,0.5,0.1";
  std::vector<std::string> data;
  double shift = 5.0;
  bool frozen_bf16 = false;
  SparsityStudyOptions options;
  SensitivityRule rule;
  po::options_description description;
  description.add_options()
      ("model", po::value(&model_path)->required(), "safetensors file, index, directory or vditkit .h5")
      ("data", po::value(&data)->multitoken()->required(), "latent dataset: the probe samples are its first ones")
      ("out", po::value(&out)->required(), "report directory (sparsity.h5, report.html)")
      ("keep", po::value(&keep)->default_value(keep), "fractions of keys each query keeps, comma-separated, each in (0, 1]")
      ("timesteps", po::value(&timesteps)->default_value(timesteps), "probe noise levels sigma (before --shift), comma-separated")
      ("probe-samples", po::value(&options.probe_samples)->default_value(options.probe_samples), "probe set: the first N samples of --data")
      ("shift", po::value(&shift)->default_value(shift), "noise-level shift applied to --timesteps (as in training and diagnose)")
      ("sensitive-ratio", po::value(&rule.ratio)->default_value(rule.ratio),
       "a block is sensitive where its velocity error exceeds this times the other blocks' median...")
      ("sensitive-floor", po::value(&rule.floor)->default_value(rule.floor), "...and that median plus this")
      ("config", po::value(&config)->default_value(""), "config.json overriding the one beside the weights")
      ("adapter", po::value(&adapter)->default_value(""), "temperature adapter to apply")
      ("set-temperature", po::value(&set_temperature)->default_value(""), "fixed self-attention temperatures BLOCKS:VALUE[;...]")
      ("frozen-bf16", po::bool_switch(&frozen_bf16), "hold the weights as bf16 (half the memory)");
  DeviceFlag device_flag;
  device_flag.add_to(description);
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit study sparsity --model M --data D --out DIR [--keep 0.9,0.5,0.1] [--device cuda] [options]",
      description);
  if (vm.empty()) return 0;
  options.keep = parse_unit_fractions(keep, "--keep", "a fraction of keys");
  options.sigmas = parse_unit_fractions(timesteps, "--timesteps", "a noise level");
  for (double& sigma : options.sigmas) sigma = shift_sigma(sigma, shift);
  if (options.probe_samples < 1) throw UsageError("--probe-samples must be at least 1; got " + std::to_string(options.probe_samples));
  if (!(rule.ratio >= 1.0) || !(rule.floor >= 0.0))
    throw UsageError("--sensitive-ratio must be at least 1 and --sensitive-floor at least 0");
  const Device device = device_flag.device();

  const std::unique_ptr<Model> model =
      load_run_model(model_path, config, frozen_bf16 || device.is_cuda(), adapter, set_temperature);
  model->to(device);
  const LatentDataset dataset = LatentDataset::open(data);
  const int64_t runs = static_cast<int64_t>(options.sigmas.size() * options.keep.size()) *
                       std::min<int64_t>(options.probe_samples, dataset.size()) * (model->facts().num_blocks + 1);
  ProgressLine line("study sparsity", runs);
  SparsityStudy study = run_sparsity_study(*model, dataset, options, [&](int64_t done, int64_t) { line.update(done, ""); });
  line.finish();
  study.model = model_path;
  write_sparsity_report(out, study, rule);

  std::printf("velocity error with one block's self-attention sparsified (all: every block's)\n   keep");
  for (double k : study.keep) std::printf(" %7g", k);
  std::printf("\n");
  for (int64_t b = 0; b <= study.blocks; ++b) {
    std::printf("%7s", (b < study.blocks ? "block " + std::to_string(b) : std::string("all")).c_str());
    for (int64_t l = 0; l < study.levels(); ++l)
      std::printf(" %7.4f", b < study.blocks ? study.velocity_error[b * study.levels() + l] : study.all_blocks_velocity_error[l]);
    std::printf("\n");
  }
  std::string names;
  for (const SensitiveBlock& s : sensitive_blocks(study, rule)) names += " " + std::to_string(s.block);
  std::cout << "sensitive blocks:" << (names.empty() ? " none" : names) << "\n";
  std::cout << "report: " << out << "/report.html\n";
  return 0;
}

}  // namespace vdit::cli
