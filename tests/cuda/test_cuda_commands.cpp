// The commands with --device cuda against the same commands on the CPU, on a tiny model (head
// dimension 64, the fused attention kernel's smallest) whose weights are bf16 values, so the GPU's
// bf16 frozen weights equal the CPU's float32 ones and the differences are the GPU's bf16
// activations only: forward, a few retraining and temperature-tuning steps, sampling. Then what
// a run needs on the GPU: a resume bit-identical to the uninterrupted run, --recompute-frozen
// changing nothing, checkpoints that move between CPU and GPU, and an allocator that stops
// growing once a step's shapes have been seen.
//
// Tolerances, each a fraction of the largest magnitude compared:
// - velocity and loss 2e-2: every activation on the GPU is rounded to bf16 (2^-9 relative) and a
//   block chains ~20 ops (tests/cuda/test_cuda_wan.cpp measures the same bound per parameter);
// - SGD weight changes 5e-2: lr times the gradients, which match within 2e-2 of their scale, over
//   three steps that start from weights differing by as much;
// - learnt temperatures 0.25: their gradients cancel over every (query, key) pair, amplifying
//   the bf16 rounding (test_cuda_wan.cpp, kTemperatureTolerance);
// - sampled latents 3e-2: four Euler steps, each adding a velocity accurate to 2e-2.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "autograd/cuda_backend.h"
#include "autograd/ops.h"
#include "data/adapter.h"
#include "data/hdf5_file.h"
#include "data/latent_dataset.h"
#include "data/model_io.h"
#include "data/synthetic_data.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/run_comparison.h"
#include "train/trainer.h"

namespace vdit {
namespace {

using testing::ScratchDir;

VDiTConfig gpu_tiny_config() {
  return testing::small_config(
      {.dim = 128, .ffn_dim = 96, .num_heads = 2, .num_layers = 3, .text_dim = 8, .text_len = 6, .freq_dim = 16});
}

class CudaCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    ParameterMap p = testing::params_with_random_head(gpu_tiny_config(), 5, 0.1f);
    for (auto& [key, value] : p) value = value.to_bf16().to_f32();
    save_model(dir_ / "model.h5", gpu_tiny_config(), p, ModelFormat::H5);
    SyntheticDataSpec spec;  // latents [4, 2, 8, 8]: 2 x 4 x 4 = 32 tokens
    spec.samples = 8;
    spec.channels = 4;
    spec.frames = 2;
    spec.context_len = 5;
    spec.text_dim = 8;
    write_latent_dataset(dir_ / "data.h5", make_synthetic_samples(spec));
  }

  // `vditkit ARGS`, which must succeed.
  void run(const std::string& args) {
    const testing::CommandResult r = testing::run_vditkit(args);
    ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.output;
  }

  // A training command on the tiny data into RUN_DIR: no diagnostics (tests/cuda/ covers those
  // where they are built), a constant learning rate so that --steps may extend a run.
  std::string training(const std::string& command, const std::string& run_dir, const std::string& device,
                       const std::string& extra) {
    return command + " --model " + dir_ / "model.h5" + " --data " + dir_ / "data.h5" + " --out " + dir_ / run_dir +
           " --device " + device + " --batch-size 2 --lr-decay constant --no-diagnostics " + extra;
  }

  std::vector<double> losses(const std::string& run_dir) {
    std::vector<double> out;
    for (const nlohmann::json& record : testing::step_records(dir_ / run_dir)) out.push_back(record["loss"]);
    return out;
  }

  void expect_losses_match(const std::string& gpu_run, const std::string& cpu_run, size_t steps) {
    const std::vector<double> gpu = losses(gpu_run), cpu = losses(cpu_run);
    ASSERT_EQ(gpu.size(), steps);
    ASSERT_EQ(cpu.size(), steps);
    for (size_t i = 0; i < steps; ++i) EXPECT_NEAR(gpu[i], cpu[i], 2e-2 * std::abs(cpu[i])) << "step " << i + 1;
  }

  // `vditkit forward` on DIR/in.h5 (made on first use) into DIR/OUTPUT.
  void forward(const std::string& output, const std::string& flags) {
    if (!std::filesystem::exists(dir_ / "in.h5")) {
      Rng rng(3);
      Hdf5File in(dir_ / "in.h5", Hdf5File::Mode::Create);
      in.write("latents", rng.normal_tensor({4, 2, 8, 8}));
      in.write("timestep", Tensor::full({1}, 700.0f));
      in.write("context", rng.normal_tensor({4, 8}));
    }
    run("forward --model " + dir_ / "model.h5" + " --input " + dir_ / "in.h5" + " --output " + dir_ / output + " " + flags);
  }

  ScratchDir dir_;
};

TEST_F(CudaCommands, ForwardMatchesTheCpu) {
  VDIT_REQUIRE_GPU();
  for (const std::string device : {"cpu", "cuda"}) forward(device + ".h5", "--device " + device);
  const Tensor gpu = Hdf5File(dir_ / "cuda.h5", Hdf5File::Mode::Read).read("velocity");
  const Tensor cpu = Hdf5File(dir_ / "cpu.h5", Hdf5File::Mode::Read).read("velocity");
  EXPECT_LE(testing::relative_error(gpu, cpu), 2e-2);
}

// SGD without momentum from the pretrained weights (--init keep): each weight change is lr times
// a gradient, so the GPU's changes compare with the CPU's at the gradients' precision.
TEST_F(CudaCommands, RetrainStepsMatchTheCpu) {
  VDIT_REQUIRE_GPU();
  for (const std::string device : {"cpu", "cuda"})
    run(training("retrain", device, device, "--layers 1 --init keep --steps 3 --optimizer sgd --momentum 0 --lr 0.05"));
  expect_losses_match("cuda", "cpu", 3);
  const ParameterMap start = load_model(dir_ / "model.h5").params;
  const ParameterMap cpu = load_model(dir_ / "cpu/checkpoint-000003/model.h5").params;
  const ParameterMap gpu = load_model(dir_ / "cuda/checkpoint-000003/model.h5").params;
  for (const auto& [key, value] : start) {
    const Tensor cpu_change = sub(cpu.at(key), value), gpu_change = sub(gpu.at(key), value);
    if (key.rfind("blocks.1.", 0) != 0) {
      EXPECT_EQ(testing::max_abs(gpu_change), 0.0) << key << " is frozen";
      continue;
    }
    ASSERT_GT(testing::max_abs(cpu_change), 0.0) << key << " did not learn on the CPU";
    EXPECT_LE(testing::max_abs_difference(gpu_change, cpu_change), 5e-2 * testing::max_abs(cpu_change)) << key;
  }
}

TEST_F(CudaCommands, TuneTemperatureMatchesTheCpu) {
  VDIT_REQUIRE_GPU();
  for (const std::string device : {"cpu", "cuda"})
    run(training("tune-temperature", device, device, "--steps 3 --optimizer sgd --momentum 0 --lr 0.2"));
  expect_losses_match("cuda", "cpu", 3);
  const Adapter cpu = read_adapter(dir_ / "cpu/adapter.h5"), gpu = read_adapter(dir_ / "cuda/adapter.h5");
  ASSERT_EQ(gpu.log_temperatures.size(), 3u);  // one per block's self-attention
  EXPECT_EQ(gpu.model_identity, cpu.model_identity);
  double largest = 0.0;
  for (const auto& [key, value] : cpu.log_temperatures) largest = std::max(largest, testing::max_abs(value));
  ASSERT_GT(largest, 0.0);
  for (const auto& [key, value] : cpu.log_temperatures)
    EXPECT_LE(testing::max_abs_difference(gpu.log_temperatures.at(key), value), 0.25 * largest) << key;
  // Each adapter belongs to the model as stored, so it applies on the other device.
  forward("cpu-adapter-on-gpu.h5", "--device cuda --adapter " + dir_ / "cpu/adapter.h5");
  forward("gpu-adapter-on-cpu.h5", "--device cpu --adapter " + dir_ / "cuda/adapter.h5");
}

TEST_F(CudaCommands, SampleMatchesTheCpu) {
  VDIT_REQUIRE_GPU();
  for (const std::string device : {"cpu", "cuda"})
    run("sample --model " + dir_ / "model.h5" + " --prompt 'a red ball' --frames 2 --size 8x8 --steps 4 --guidance 3"
        " --out " + dir_ / (device + ".h5") + " --device " + device);
  const Tensor gpu = Hdf5File(dir_ / "cuda.h5", Hdf5File::Mode::Read).read("latents");
  const Tensor cpu = Hdf5File(dir_ / "cpu.h5", Hdf5File::Mode::Read).read("latents");
  ASSERT_EQ(gpu.shape(), cpu.shape());
  EXPECT_LE(testing::relative_error(gpu, cpu), 3e-2);
}

// A GPU run stopped after step 2 and resumed on the GPU ends bit for bit where the uninterrupted
// GPU run does: weights, AdamW moments, run state and every logged step (the kernels are
// deterministic; noise and noise levels come from the host's streams).
TEST_F(CudaCommands, ResumeOnTheGpuIsBitIdentical) {
  VDIT_REQUIRE_GPU();
  const std::string flags = "--layers 1 --grad-accum 2 --checkpoint-every 2";
  run(training("retrain", "straight", "cuda", flags + " --steps 4"));
  run(training("retrain", "resumed", "cuda", flags + " --steps 2"));
  run("retrain --resume " + dir_ / "resumed/checkpoint-000002" + " --steps 4 --device cuda");
  testing::expect_same_run(dir_ / "resumed", dir_ / "straight");
}

// Frozen blocks after the trained one kept as inputs and recomputed: the same kernels on the same
// values, so the same run bit for bit.
TEST_F(CudaCommands, RecomputeFrozenChangesNothingOnTheGpu) {
  VDIT_REQUIRE_GPU();
  run(training("retrain", "stored", "cuda", "--layers 0 --steps 2"));
  run(training("retrain", "recomputed", "cuda", "--layers 0 --steps 2 --recompute-frozen"));
  EXPECT_EQ(testing::step_records(dir_ / "recomputed"), testing::step_records(dir_ / "stored"));
  EXPECT_EQ(testing::dataset_bits(dir_ / "recomputed/checkpoint-000002/model.h5"),
            testing::dataset_bits(dir_ / "stored/checkpoint-000002/model.h5"));
}

// A NaN in the weights (the data is checked on reading; a model is not) stops a GPU run as it
// stops a CPU one, naming the step.
TEST_F(CudaCommands, NonFiniteLossStopsTheRun) {
  VDIT_REQUIRE_GPU();
  ParameterMap p = load_model(dir_ / "model.h5").params;
  p["head.head.bias"].data()[0] = NAN;
  save_model(dir_ / "model.h5", gpu_tiny_config(), p, ModelFormat::H5);
  const testing::CommandResult r = testing::run_vditkit(training("retrain", "run", "cuda", "--layers 1 --steps 3"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("step 1: the loss is "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nan"), std::string::npos) << r.output;
}

// A checkpoint written on one device continues on the other: the step after it matches the step
// the writing device took (same weights and moments, the other device's precision).
TEST_F(CudaCommands, CheckpointsMoveBetweenCpuAndGpu) {
  VDIT_REQUIRE_GPU();
  for (const std::string device : {"cpu", "cuda"}) {
    run(training("retrain", device, device, "--layers 1 --steps 3 --checkpoint-every 2 --keep-last 0"));
    const std::string other = device == "cpu" ? "cuda" : "cpu";
    run("retrain --resume " + dir_ / (device + "/checkpoint-000002") + " --out " + dir_ / ("moved-" + device) +
        " --device " + other);
  }
  for (const std::string device : {"cpu", "cuda"}) {
    const std::vector<double> written = losses(device), moved = losses("moved-" + device);
    ASSERT_EQ(written.size(), 3u);
    ASSERT_EQ(moved.size(), 1u) << "the resumed run's log holds its own step 3";
    EXPECT_NEAR(moved[0], written[2], 2e-2 * std::abs(written[2])) << "checkpoint written on " << device;
  }
}

// After two steps have allocated every shape, twenty more take no new device memory: no cudaMalloc,
// the same bytes held between steps.
TEST_F(CudaCommands, AllocatorDoesNotGrowOverTwentyRetrainingSteps) {
  VDIT_REQUIRE_GPU();
  RetrainOptions o;
  o.model = dir_ / "model.h5";
  o.data = {dir_ / "data.h5"};
  o.out = dir_ / "run";
  o.layers = "1";
  o.steps = 22;
  o.batch_size = 2;
  o.diagnostics = false;
  o.device = Device::cuda(0);
  Retrainer trainer(o);
  for (int i = 0; i < 2; ++i) trainer.step();
  const DeviceMemoryStats before = cuda_backend().memory_stats(0);
  for (int i = 0; i < 20; ++i) trainer.step();
  const DeviceMemoryStats after = cuda_backend().memory_stats(0);
  EXPECT_EQ(after.device_allocations, before.device_allocations);
  EXPECT_EQ(after.live, before.live);
  EXPECT_EQ(after.live + after.cached, before.live + before.cached);
}

}  // namespace
}  // namespace vdit
