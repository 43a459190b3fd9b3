// Mochi-1 and CogVideoX-2b through the commands with --device cuda, against the same commands on
// the CPU, on the tiny presets (heads of 64, the fused attention's smallest width) with bf16
// weight values, so that the GPU's bf16 frozen weights equal the CPU's float32 ones and the
// differences are the GPU's bf16 activations only: retraining steps (losses within 2e-2, the
// bound tests/cuda/test_cuda_commands.cpp gives Wan), a GPU resume bit-identical to the
// uninterrupted GPU run, tune-temperature and diagnose. The models' GPU forward and gradients
// against the CPU's are in test_cuda_families.cpp, the joint statistics' in
// test_cuda_attention_stats.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "data/adapter.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/run_comparison.h"

namespace vdit {
namespace {

using testing::ScratchDir;

void run(const std::string& args) {
  const testing::CommandResult r = testing::run_vditkit(args);
  ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.output;
}

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> out;
  for (const nlohmann::json& record : testing::step_records(run_dir)) out.push_back(record["loss"]);
  return out;
}

class CudaFamilyCommands : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    VDIT_REQUIRE_GPU();
    run("create --preset " + GetParam() + " --layers 3 --out " + dir_ / "fp32.h5");
    run("convert " + dir_ / "fp32.h5" + " " + model_ + " --bf16");
    run("make-data --preset tiny --samples 4 --height 8 --width 8 --frames 2 --out " + dir_ / "data.h5");
  }

  std::string training(const std::string& command, const std::string& run_dir, const std::string& device,
                       const std::string& extra) const {
    return command + " --model " + model_ + " --data " + dir_ / "data.h5" + " --out " + dir_ / run_dir +
           " --device " + device + " --batch-size 2 --lr-decay constant --no-diagnostics " + extra;
  }

  void expect_losses_match(const std::string& gpu_run, const std::string& cpu_run, size_t steps) const {
    const std::vector<double> gpu = losses(dir_ / gpu_run), cpu = losses(dir_ / cpu_run);
    ASSERT_EQ(gpu.size(), steps);
    ASSERT_EQ(cpu.size(), steps);
    for (size_t i = 0; i < steps; ++i) EXPECT_NEAR(gpu[i], cpu[i], 2e-2 * std::abs(cpu[i])) << "step " << i + 1;
  }

  ScratchDir dir_;
  std::string model_ = dir_ / "model";  // a diffusers directory of bf16 weights
};

TEST_P(CudaFamilyCommands, RetrainMatchesTheCpuAndResumesExactly) {
  for (const std::string device : {"cpu", "cuda"})
    run(training("retrain", device, device, "--layers 1 --init keep --steps 3 --optimizer sgd --momentum 0 --lr 0.05"));
  expect_losses_match("cuda", "cpu", 3);
  const std::string flags = "--layers 1 --checkpoint-every 2 --recompute-frozen";
  run(training("retrain", "straight", "cuda", flags + " --steps 4"));
  run(training("retrain", "resumed", "cuda", flags + " --steps 2"));
  run("retrain --resume " + dir_ / "resumed/checkpoint-000002" + " --steps 4 --device cuda");
  testing::expect_same_run(dir_ / "resumed", dir_ / "straight");
}

TEST_P(CudaFamilyCommands, TuneTemperatureAndDiagnoseRunOnTheGpu) {
  for (const std::string device : {"cpu", "cuda"})
    run(training("tune-temperature", device, device, "--steps 3 --optimizer sgd --momentum 0 --lr 0.2"));
  expect_losses_match("cuda", "cpu", 3);
  EXPECT_EQ(read_adapter(dir_ / "cuda/adapter.h5").log_temperatures.size(), 3u);  // one per block's joint attention
  const testing::CommandResult diagnosed = testing::run_vditkit(
      "diagnose --model " + model_ + " --data " + dir_ / "data.h5" + " --device cuda --probe-samples 1 --out " +
      dir_ / "diagnosis");
  ASSERT_EQ(diagnosed.exit_code, 0) << diagnosed.output;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "diagnosis/report.html"));
}

INSTANTIATE_TEST_SUITE_P(Families, CudaFamilyCommands, ::testing::Values("mochi-tiny", "cogvideox-tiny"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "mochi-tiny" ? std::string("Mochi") : std::string("CogVideoX");
                         });

}  // namespace
}  // namespace vdit
