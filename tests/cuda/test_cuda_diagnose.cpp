// `vditkit diagnose --device cuda` against the same command on the CPU, on a tiny Wan-shaped
// model (head_dim 64, the GPU kernels' smallest) with bf16-exact weights and two probe samples:
// every per-head statistic of the two reports, and the sparsification error per block.
//
// Tolerances: the GPU stores every activation in bf16 (2^-9 relative per op, about 2e-2 of the
// largest value after a block: tests/cuda/test_cuda_wan.cpp), so q and k reach the statistics
// with that error, while the statistics' own GPU error is far smaller
// (test_cuda_attention_stats.cpp). Shares and normalised entropies of order 1 are compared to
// 0.03; the collapsed share to 0.1 (3 of the 32 queries of a sample may sit at the threshold);
// the sparsification error, a ratio of differences of activations, to 10% of itself plus 0.02.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "data/latent_dataset.h"
#include "data/model_io.h"
#include "diagnostics/diagnostics_report.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::ScratchDir;

void expect_close(const std::vector<double>& gpu, const std::vector<double>& cpu, double absolute, double relative,
                  const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (std::isnan(cpu[i])) {
      EXPECT_TRUE(std::isnan(gpu[i])) << what << " [" << i << "]";
      continue;
    }
    EXPECT_NEAR(gpu[i], cpu[i], absolute + relative * std::abs(cpu[i])) << what << " [" << i << "]";
  }
}

TEST(CudaDiagnose, CommandMatchesTheCpu) {
  VDIT_REQUIRE_GPU();
  ScratchDir dir;
  const VDiTConfig c = testing::small_config({.dim = 128, .ffn_dim = 64, .num_heads = 2, .num_layers = 2});
  ParameterMap params = testing::params_with_random_head(c, 7, 0.2f);
  for (auto& [name, value] : params) {
    // Sharper attention than the initialisation's (whose maps are near uniform): larger q/k norms.
    if (name.ends_with("norm_q.weight") || name.ends_with("norm_k.weight")) value = scale(value, 3.0f);
    value = value.to_bf16().to_f32();
  }
  save_model(dir / "model.h5", c, params, ModelFormat::H5);
  Rng rng(8);
  write_latent_dataset(dir / "data.h5", {{rng.normal_tensor({4, 2, 8, 8}), rng.normal_tensor({3, 6}), "a"},
                                         {rng.normal_tensor({4, 2, 8, 8}), rng.normal_tensor({3, 6}), "b"}});
  const std::string args = "diagnose --model " + dir / "model.h5" + " --data " + dir / "data.h5" + " --timesteps 0.9,0.3";
  const testing::CommandResult cpu_run = testing::run_vditkit(args + " --out " + dir / "cpu");
  ASSERT_EQ(cpu_run.exit_code, 0) << cpu_run.output;
  const testing::CommandResult gpu_run = testing::run_vditkit(args + " --device cuda --out " + dir / "gpu");
  ASSERT_EQ(gpu_run.exit_code, 0) << gpu_run.output;

  const DiagnosticsReport cpu = read_diagnostics_h5(dir / "cpu/diagnostics.h5");
  const DiagnosticsReport gpu = read_diagnostics_h5(dir / "gpu/diagnostics.h5");
  for (const auto& [name, g, k] : {std::tuple{"self", &gpu.self_attn, &cpu.self_attn}, {"cross", &gpu.cross_attn, &cpu.cross_attn}}) {
    const std::string kind = name;
    expect_close(g->entropy, k->entropy, 0.03, 0.0, kind + " entropy");
    expect_close(g->sink_mass, k->sink_mass, 0.03, 0.0, kind + " sink_mass");
    expect_close(g->top1_over_threshold, k->top1_over_threshold, 0.1, 0.0, kind + " top1_over_threshold");
    expect_close(g->keys_for_90, k->keys_for_90, 0.03, 0.0, kind + " keys_for_90");
    expect_close(g->keys_for_95, k->keys_for_95, 0.03, 0.0, kind + " keys_for_95");
    expect_close(g->frame_distance_mass, k->frame_distance_mass, 0.03, 0.0, kind + " frame_distance_mass");
    expect_close(g->sparsify_error, k->sparsify_error, 0.02, 0.1, kind + " sparsify_error");
  }
  expect_close(gpu.self_attn.structure_correlation, cpu.self_attn.structure_correlation, 0.05, 0.0, "structure_correlation");
}

}  // namespace
}  // namespace vdit
