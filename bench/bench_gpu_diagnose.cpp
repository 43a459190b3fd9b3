// `diagnose` on the GPU (issue 14): all 30 blocks of a 1.3B-shaped model at 32,760 tokens
// (480x832, 81 frames), one probe sample, three noise levels, with the sparsification test, in
// seconds and as a ratio to three full forward passes of the same model in the same run (the
// issue's bound: under 10x).
#include <chrono>
#include <cmath>
#include <filesystem>

#include "autograd/cuda_backend.h"
#include "autograd/random.h"
#include "bench/harness.h"
#include "data/latent_dataset.h"
#include "diagnostics/diagnose.h"
#include "layers/init.h"

namespace vdit::bench {

namespace {

double seconds_of(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  cuda_backend().synchronize(0);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void run_gpu_diagnose() {
  if (!cuda_available()) {
    report("gpu_diagnose", "skipped: no CUDA device visible (or vditkit built without -DVDITKIT_CUDA=ON)");
    return;
  }
  const VDiTConfig config = VDiTConfig::wan_1_3b();
  Rng rng(5);
  ParameterMap params;  // random values of std 1/sqrt(fan_in), so attention is not degenerate
  for (const ParamSpec& spec : wan_parameter_specs(config))
    params[spec.name] = rng.normal_tensor(spec.shape, 1.0f / std::sqrt(static_cast<float>(spec.shape.back())));
  VDiT model(config, std::move(params));
  model.to(Device::cuda(0));

  // 21 x 60 x 104 latents: 21 x 30 x 52 = 32,760 tokens after the 1x2x2 patch.
  const Shape latent_shape{config.in_dim, 21, 60, 104};
  const std::filesystem::path data = std::filesystem::temp_directory_path() / "vditkit-bench-gpu-diagnose.h5";
  const Tensor latents = rng.normal_tensor(latent_shape), context = rng.normal_tensor({config.text_len, config.text_dim});
  write_latent_dataset(data.string(), {{latents, context, "bench"}});
  const LatentDataset dataset = LatentDataset::open({data.string()});
  DiagnoseOptions options;  // three noise levels and --sparse-keep 0.1, as the command's defaults
  options.probe_samples = 1;

  Shape batched = latent_shape;
  batched.insert(batched.begin(), 1);
  const Tensor x = reshape(latents, batched).to(Device::cuda(0));
  const Tensor c = reshape(context, {1, config.text_len, config.text_dim}).to(Device::cuda(0));
  NoGradScope no_grad;
  model.forward(x, {500.0}, c);  // warm-up: kernels, plans and the allocator's blocks
  const double forward_s = seconds_of([&] { model.forward(x, {500.0}, c); });
  const double diagnose_s = seconds_of([&] { diagnose(model, dataset, options); });
  std::filesystem::remove(data);
  report("gpu_diagnose_tokens", 32760);
  report("gpu_forward_s", forward_s);
  report("gpu_diagnose_30_blocks_3_sigmas_s", diagnose_s);
  report("gpu_diagnose_over_3_forwards", diagnose_s / (3.0 * forward_s));
  report("gpu_diagnose_peak_gib", cuda_backend().memory_stats(0).peak / double(1 << 30));
}

Register gpu_diagnose_section("gpu_diagnose",
                              "diagnose all 30 blocks of the 1.3B shapes at 32,760 tokens on the GPU, against 3 forwards",
                              run_gpu_diagnose);

}  // namespace

}  // namespace vdit::bench
