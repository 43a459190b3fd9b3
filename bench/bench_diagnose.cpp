// Diagnostics figures (issue: attention diagnostics): diagnosing one 1.3B-shaped block at
// 4096 tokens (512 context tokens) runs in bounded memory because every statistic streams
// over query blocks; the peak is compared with the block's weights.
#include <malloc.h>

#include <chrono>
#include <cmath>

#include <filesystem>

#include "autograd/random.h"
#include "bench/harness.h"
#include "data/latent_dataset.h"
#include "diagnostics/diagnose.h"
#include "layers/init.h"
#include "layers/vdit.h"

namespace vdit::bench {

namespace {

void run_diagnose() {
  VDiTConfig config = VDiTConfig::wan_1_3b();
  config.num_layers = 1;
  Rng rng(5);
  ParameterMap params;  // random values of std 1/sqrt(fan_in), so attention is not degenerate
  for (const ParamSpec& spec : wan_parameter_specs(config))
    params[spec.name] = rng.normal_tensor(spec.shape, 1.0f / std::sqrt(static_cast<float>(spec.shape.back())));
  int64_t block_parameters = 0;
  for (const ParamSpec& spec : wan_block_parameter_specs(config, 0)) block_parameters += numel(spec.shape);
  const VDiT model(config, std::move(params));

  const std::filesystem::path data = std::filesystem::temp_directory_path() / "vditkit-bench-diagnose.h5";
  write_latent_dataset(data.string(), {{rng.normal_tensor({16, 4, 64, 64}), rng.normal_tensor({512, 4096}), "bench"}});
  const LatentDataset dataset = LatentDataset::open({data.string()});
  DiagnoseOptions options;
  options.sigmas = {0.5};
  options.probe_samples = 1;

  // Everything the diagnosis adds to the process counts, including what outlives it (OpenBLAS's
  // per-thread buffers, the tensor block cache); run twice, the second run timed.
  malloc_trim(0);
  const double before = current_rss_mib();
  reset_peak_rss();
  const int64_t live_before = tensor_memory().live_bytes;
  reset_tensor_memory_peak();
  diagnose(model, dataset, options);
  const auto start = std::chrono::steady_clock::now();
  diagnose(model, dataset, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double peak = peak_rss_mib() - before;
  const double block_mib = block_parameters * 4.0 / (1024.0 * 1024.0);
  std::filesystem::remove(data);
  report("diagnose_tokens", 4096);
  report("diagnose_block_s", seconds);
  report("diagnose_peak_mib", peak);
  report("diagnose_tensor_peak_mib", (tensor_memory().peak_bytes - live_before) / (1024.0 * 1024.0));
  report("diagnose_block_weights_mib", block_mib);
  report("diagnose_peak_vs_block_weights", peak / block_mib);
}

Register diagnose_section("diagnose", "diagnostics of a 1.3B-shaped block at 4096 tokens: time and memory", run_diagnose);

}  // namespace

}  // namespace vdit::bench
