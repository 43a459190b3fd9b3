// `diagnose` on the GPU (issue 14): all 30 blocks of a 1.3B-shaped model at 32,760 tokens
// (480x832, 81 frames), one probe sample, three noise levels, with the sparsification test, in
// seconds and as a ratio to three full forward passes of the same model in the same run (the
// issue's bound: under 10x; the forward runs the attention VDITKIT_CUDA_ATTENTION picks, cuDNN's
// by default, and says which); and the statistics and the sparsified attention of one block's
// self-attention alone, and both from one set of passes as diagnose runs them, to show where the
// time goes (section gpu_diagnose_pieces runs only those, once more inside the NVTX range
// profile_diagnose_pieces for scripts/profile-gpu.sh).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "autograd/cuda_backend.h"
#include "autograd/random.h"
#include "bench/harness.h"
#include "data/latent_dataset.h"
#include "diagnostics/attention_stats.h"
#include "diagnostics/diagnose.h"
#include "diagnostics/sparse_attention.h"
#include "layers/init.h"
#include "layers/vdit.h"
#if VDITKIT_CUDA
#include <nvtx3/nvToolsExt.h>

#include "autograd/cuda/attention_cudnn.h"
#include "diagnostics/diagnostics_cuda.h"
#endif

namespace vdit::bench {

namespace {

double seconds_of(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  cuda_backend().synchronize(0);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The two GPU pieces diagnose adds per self-attention, alone on random q, k, v of the block's
// shapes (12 heads of 128 at 32,760 tokens; logits of std 1), each timed once after a warm-up.
void report_pieces(const VDiTConfig& config, Rng& rng) {
  const TokenGrid grid{21, 30, 52};
  const Shape shape{grid.tokens(), config.num_heads, config.head_dim()};
  auto random_bf16 = [&](const Shape& s) { return rng.normal_tensor(s).to_bf16().to(Device::cuda(0)); };
  const Tensor q = random_bf16(shape), k = random_bf16(shape), v = random_bf16(shape);
  const float scale = 1.0f / std::sqrt(static_cast<float>(config.head_dim()));
  const AttentionStatsOptions options;
  auto stats = [&] { attention_statistics(q, k, scale, {}, &grid, options); };
  const Shape batched{1, grid.tokens(), config.num_heads, config.head_dim()};
  auto sparse = [&] { sparse_attention(reshape(q, batched), reshape(k, batched), reshape(v, batched), scale, {}, 0.1); };
  stats();
  report("gpu_attention_stats_self_ms", 1e3 * seconds_of(stats));
  sparse();
  report("gpu_sparse_attention_self_ms", 1e3 * seconds_of(sparse));
#if VDITKIT_CUDA
  // As diagnose runs them on a GPU: the sparsified output from the statistics' passes.
  auto both = [&] { attention_statistics_and_sparse_cuda(q, k, v, scale, {}, &grid, options, kept_keys(0.1, grid.tokens())); };
  both();
  report("gpu_stats_and_sparse_self_ms", 1e3 * seconds_of(both));
  nvtxRangePushA("profile_diagnose_pieces");
  seconds_of(stats);
  seconds_of(sparse);
  seconds_of(both);
  nvtxRangePop();
#endif
}

void run_gpu_diagnose_pieces() {
  if (!cuda_available()) {
    report("gpu_diagnose_pieces", "skipped: no CUDA device visible (or vditkit built without -DVDITKIT_CUDA=ON)");
    return;
  }
  Rng rng(5);
  report_pieces(VDiTConfig::wan_1_3b(), rng);
}

// The attention the forward runs: VDITKIT_CUDA_ATTENTION's choice, auto meaning cuDNN's where
// it is built in (the plain attention of a model without temperatures).
std::string forward_attention() {
  const char* env = std::getenv("VDITKIT_CUDA_ATTENTION");
  const std::string choice = env && *env ? env : "auto";
#if VDITKIT_CUDA
  if (choice == "auto") return cuda::cudnn_attention_built() ? "auto (cuDNN)" : "auto (own kernel: no cuDNN built in)";
#endif
  return choice;
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
  report_pieces(config, rng);
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
  report("gpu_forward_attention", forward_attention());
  report("gpu_forward_s", forward_s);
  report("gpu_diagnose_30_blocks_3_sigmas_s", diagnose_s);
  report("gpu_diagnose_over_3_forwards", diagnose_s / (3.0 * forward_s));
  report("gpu_diagnose_peak_gib", cuda_backend().memory_stats(0).peak / double(1 << 30));
}

Register gpu_diagnose_section("gpu_diagnose",
                              "diagnose all 30 blocks of the 1.3B shapes at 32,760 tokens on the GPU, against 3 forwards",
                              run_gpu_diagnose);
Register gpu_diagnose_pieces_section("gpu_diagnose_pieces",
                                     "the statistics and the sparsified attention of one 32,760-token self-attention alone",
                                     run_gpu_diagnose_pieces);

}  // namespace

}  // namespace vdit::bench
