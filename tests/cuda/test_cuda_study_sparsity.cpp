// `vditkit study sparsity --device cuda` against the same command on the CPU, on the tiny
// Wan-shaped model of tests/cuda/probe_fixture.h (head_dim 64, bf16-exact weights).
//
// Tolerance: every GPU activation is bf16 (about 2e-2 of the largest value after a block,
// tests/cuda/test_cuda_wan.cpp), and the errors are ratios of differences of such activations,
// as diagnose's sparsification error: 10% of themselves plus 0.02. Keeping every key is exact on
// both devices (the attention is left alone).
#include <gtest/gtest.h>

#include <string>

#include "data/hdf5_file.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/cuda/probe_fixture.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::ScratchDir;

TEST(CudaStudySparsity, CommandMatchesTheCpu) {
  VDIT_REQUIRE_GPU();
  ScratchDir dir;
  testing::write_gpu_probe_fixture(dir, 3);
  const std::string args = "study sparsity --model " + dir / "model.h5" + " --data " + dir / "data.h5" +
                           " --keep 1,0.5,0.1 --timesteps 0.9,0.3";
  const testing::CommandResult cpu_run = testing::run_vditkit(args + " --out " + dir / "cpu");
  ASSERT_EQ(cpu_run.exit_code, 0) << cpu_run.output;
  const testing::CommandResult gpu_run = testing::run_vditkit(args + " --device cuda --out " + dir / "gpu");
  ASSERT_EQ(gpu_run.exit_code, 0) << gpu_run.output;

  const Hdf5File cpu(dir / "cpu/sparsity.h5", Hdf5File::Mode::Read), gpu(dir / "gpu/sparsity.h5", Hdf5File::Mode::Read);
  for (const char* name : {"velocity_error", "block_output_error", "all_blocks_velocity_error"}) {
    const std::vector<float> g = gpu.read(name).to_vector(), k = cpu.read(name).to_vector();
    ASSERT_EQ(g.size(), k.size()) << name;
    const size_t levels = 3;
    for (size_t i = 0; i < k.size(); ++i) {
      if (i % levels == 0) {
        EXPECT_EQ(g[i], 0.0f) << name << " [" << i << "]";  // keep 1: exact
      }
      EXPECT_NEAR(g[i], k[i], 0.02 + 0.1 * k[i]) << name << " [" << i << "]";
    }
  }
}

}  // namespace
}  // namespace vdit
