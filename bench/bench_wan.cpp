// Wan2.1 figures (issue: Wan2.1 VDiT): one 1.3B-shaped block forward + backward, ours against
// PyTorch on the same shapes and threads; a frozen block's forward with float32 and with bf16
// weights (--frozen-bf16), ours against each other and against PyTorch in float32 and bf16;
// and the peak memory of loading a 1.3B-shaped bf16 checkpoint as float32 and as frozen bf16.
#include <malloc.h>
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "autograd/ops.h"
#include "autograd/random.h"
#include "bench/harness.h"
#include "bench/random_checkpoint.h"
#include "data/model_io.h"
#include "layers/init.h"
#include "layers/wan_block.h"

namespace vdit::bench {

namespace {

// PyTorch's one figure from bench/torch_wan_block.py ARGS, or 0 after reporting NAME unavailable.
double torch_seconds(const std::string& name, const std::string& args) {
  const std::vector<double> figures = python_figures("torch_wan_block.py", args, omp_get_max_threads());
  if (figures.size() == 1) {
    report(name, figures[0]);
    return figures[0];
  }
  report(name, "unavailable (python3-torch missing?)");
  return 0.0;
}

void run_wan_block() {
  VDiTConfig config = VDiTConfig::wan_1_3b();
  config.num_layers = 1;
  Rng rng(0);
  ParameterMap params;
  for (const ParamSpec& spec : wan_block_parameter_specs(config, 0)) {
    params[spec.name] = init_wan_parameter(spec.name, spec.shape, rng);
    params[spec.name].set_requires_grad(true);
  }
  const WanBlock block = build_wan_block(config, params, 0);
  const std::array<int64_t, 3> grid = {4, 16, 16};  // 1024 tokens
  const int64_t tokens = 1024, d = config.dim;
  const Tensor x = rng.normal_tensor({1, tokens, d});
  const Tensor e0 = rng.normal_tensor({1, 6, d}, 0.1f);
  const Tensor context = rng.normal_tensor({1, 512, d});
  const Tensor upstream = rng.normal_tensor({1, tokens, d});
  const RopeTables rope = make_rope_tables(grid, config.head_dim());
  const double ours = seconds_per_call([&] {
    for (auto& [key, p] : params) p.zero_grad();
    sum_all(mul(block(x, e0, context, rope), upstream)).backward();
  }, 3, 3.0);
  report("wan13b_block_fwd_bwd_s", ours);
  if (const double theirs = torch_seconds("torch_wan13b_block_fwd_bwd_s", ""); theirs > 0)
    report("wan13b_block_speedup", theirs / ours);

  // A frozen block, as every block below the first trained one runs: forward only, no tape.
  ParameterMap frozen_f32, frozen_bf16;
  for (const auto& [name, p] : params) {
    frozen_f32[name] = p.detach();
    frozen_bf16[name] = p.to_bf16();
  }
  const auto frozen_forward = [&](const ParameterMap& weights) {
    const WanBlock frozen = build_wan_block(config, weights, 0);
    return seconds_per_call([&] { frozen(x, e0, context, rope); }, 3, 2.0);
  };
  const double f32 = frozen_forward(frozen_f32), bf16 = frozen_forward(frozen_bf16);
  report("wan13b_frozen_block_fwd_s", f32);
  report("wan13b_frozen_bf16_block_fwd_s", bf16);
  report("wan13b_frozen_bf16_fwd_speedup", f32 / bf16);  // bf16 weights against float32 ones
  if (const double theirs = torch_seconds("torch_wan13b_frozen_block_fwd_s", "--frozen"); theirs > 0)
    report("wan13b_frozen_fwd_speedup", theirs / f32);
  if (const double theirs = torch_seconds("torch_wan13b_frozen_bf16_block_fwd_s", "--frozen --dtype bf16"); theirs > 0)
    report("wan13b_frozen_bf16_fwd_speedup_vs_torch_bf16", theirs / bf16);
}

void run_load_memory() {
  const std::string path = (std::filesystem::temp_directory_path() / "vditkit-bench-wan13b.safetensors").string();
  const int64_t parameters = write_random_checkpoint(path, VDiTConfig::wan_1_3b());
  const double f32_mib = parameters * 4.0 / (1024.0 * 1024.0);
  report("wan13b_f32_parameter_mib", f32_mib);
  for (const bool bf16 : {false, true}) {
    malloc_trim(0);  // hand back what the previous round freed (the heap is kept warm)
    const double base = current_rss_mib();
    reset_peak_rss();
    double loaded_rss;
    {
      LoadOptions options;
      options.frozen_bf16 = bf16;
      const LoadedModel model = load_model(path, options);
      // Read every page, as a forward pass would, so that mapped pages count too.
      volatile uint32_t sink = 0;
      for (const auto& [key, t] : model.params) {
        const auto* bytes = static_cast<const uint8_t*>(t.impl()->data);
        const int64_t size = t.numel() * (t.dtype() == DType::BF16 ? 2 : 4);
        for (int64_t i = 0; i < size; i += 1024) sink = sink + bytes[i];
      }
      loaded_rss = peak_rss_mib() - base;
    }
    report(bf16 ? "wan13b_load_frozen_bf16_peak_vs_f32" : "wan13b_load_f32_peak_vs_f32", loaded_rss / f32_mib);
  }
  std::filesystem::remove(path);
}

Register wan_block_section("wan", "1.3B-shaped Wan block forward+backward, ours vs PyTorch", run_wan_block);
Register load_section("load", "peak RSS loading a 1.3B-shaped bf16 safetensors checkpoint", run_load_memory);

}  // namespace

}  // namespace vdit::bench
