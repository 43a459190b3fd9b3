// vditkit diagnose: a model's attention on a probe set (entropy, sinks, sparsity,
// sparsifiability, locality, structure), written as diagnostics.h5, summary.json, heatmaps and
// report.html, with each block checked against thresholds.
#include <cstdio>
#include <iostream>

#include "diagnostics/diagnose.h"
#include "diagnostics/diagnostics_report.h"
#include "diagnostics/thresholds.h"
#include "tools/device_flag.h"
#include "tools/diagnose_flags.h"
#include "train/flow_matching.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace vdit::cli {
namespace {

int run_diagnose(int argc, char** argv) {
  std::string model_path, config, adapter, set_temperature, out, checks;
  std::vector<std::string> data;
  double shift = 5.0;
  bool frozen_bf16 = false;
  DiagnoseOptions options;
  DiagnoseFlags probe(options, checks);
  po::options_description description;
  description.add_options()
      ("model", po::value(&model_path)->required(), "safetensors file, index, directory or vditkit .h5")
      ("data", po::value(&data)->multitoken()->required(), "latent dataset: the probe samples are its first ones")
      ("out", po::value(&out)->required(), "report directory")
      ("config", po::value(&config)->default_value(""), "config.json overriding the one beside the weights")
      ("adapter", po::value(&adapter)->default_value(""), "temperature adapter to apply")
      ("set-temperature", po::value(&set_temperature)->default_value(""), "fixed self-attention temperatures BLOCKS:VALUE[;...]")
      ("shift", po::value(&shift)->default_value(shift), "noise-level shift applied to --timesteps (as in training)")
      ("frozen-bf16", po::bool_switch(&frozen_bf16), "hold the weights as bf16 (half the memory)");
  probe.add_to(description);
  DeviceFlag device_flag;
  device_flag.add_to(description);
  const po::variables_map vm = parse_options(argc, argv, "vditkit diagnose --model M --data D --out DIR [--device cuda] [options]", description);
  if (vm.empty()) return 0;
  probe.finish();
  for (double& sigma : options.sigmas) sigma = shift_sigma(sigma, shift);
  const Device device = device_flag.device();

  const std::unique_ptr<Model> model =
      load_run_model(model_path, config, frozen_bf16 || device.is_cuda(), adapter, set_temperature);
  model->to(device);
  const LatentDataset dataset = LatentDataset::open(data);
  const Thresholds thresholds = checks.empty() ? Thresholds::defaults() : Thresholds::load(checks);
  ProgressLine line("diagnose", static_cast<int64_t>(options.sigmas.size()) *
                                    std::min<int64_t>(options.probe_samples, dataset.size()));
  DiagnosticsReport report = diagnose(*model, dataset, options, [&](int64_t done, int64_t) { line.update(done, ""); });
  line.finish();
  report.model = model_path;
  write_report(out, report, thresholds);
  std::printf("block  verdict  reasons\n");
  for (const BlockVerdict& v : check_thresholds(report, thresholds)) {
    std::string reasons;
    for (const std::string& r : v.reasons) reasons += (reasons.empty() ? "" : "; ") + r;
    std::printf("%5d  %-7s  %s\n", v.block, to_string(v.verdict).c_str(), reasons.c_str());
  }
  std::printf("block  sink head  mass   top key  same key  value/mean  frame-0 share  text-0 mass\n");
  for (int b = 0; b < report.blocks; ++b) {
    const SinkAnatomy s = sink_anatomy(report, report.self_attn, b);
    std::printf("%5d  %9d  %5.3f  %7lld  %8s  %10.3f  %13.3f  %11.3f\n", b, s.head, s.sink_mass,
                static_cast<long long>(s.top_key), s.stable ? "yes" : "no", s.value_norm, s.first_frame_share,
                sink_anatomy(report, report.cross_attn, b).first_key_mass);
  }
  std::cout << "report: " << out << "/report.html\n";
  return 0;
}

const RegisterCommand reg("diagnose", "measure a model's attention on a probe set and check it", run_diagnose);

}  // namespace
}  // namespace vdit::cli
