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
#include "tests/cuda/probe_fixture.h"
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
  testing::write_gpu_probe_fixture(dir, 2);
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
    // Sink value norms where the two runs found the same sink keys (bf16 values: 1% of the ratio).
    for (size_t i = 0; i < g->sink_keys.size(); ++i)
      if (g->sink_keys[i] == k->sink_keys[i]) expect_close(g->sink_value_norm[i], k->sink_value_norm[i], 0.0, 0.01, kind + " sink_value_norm");
  }
  expect_close(gpu.cross_attn.first_key_mass, cpu.cross_attn.first_key_mass, 0.03, 0.0, "cross first_key_mass");
  expect_close(gpu.self_attn.structure_correlation, cpu.self_attn.structure_correlation, 0.05, 0.0, "structure_correlation");
}

}  // namespace
}  // namespace vdit
