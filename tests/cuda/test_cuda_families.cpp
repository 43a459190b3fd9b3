// Mochi-1 and CogVideoX-2b on the GPU against the same models on the CPU (same weights, same
// inputs): the velocity and every trained parameter's gradient, with everything trainable and
// with only the last block trainable (frozen weights as bf16). The CPU models are checked
// against the float64 references in test_mochi_parity.cpp and test_cogvideox_parity.cpp. Head
// widths are 64 (the fused attention kernel's smallest). Tolerances as in test_cuda_wan.cpp:
// 2e-2 of the largest value, for bf16 activations on the GPU against float32 on the CPU, the
// weights and inputs rounded to bf16 values on both sides. Mochi's pos_frequencies stay frozen:
// training them needs sin/cos, which run on the CPU only (autograd/ops_trig.h). With temperatures
// the GPU divides the queries by tau (tempered_attention.h) where the CPU's attention divides the
// logits: everything trainable, and only the temperatures (tune-temperature's case).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.h"
#include "autograd/random.h"
#include "layers/cogvideox_model.h"
#include "layers/family_params.h"
#include "layers/mochi_model.h"
#include "tests/cuda/gpu_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

constexpr double kTolerance = 2e-2;
// A head's temperature gradient is a sum whose terms cancel (test_cuda_wan.cpp, where 0.155 of
// the scale was measured): the same bound as Wan's.
constexpr double kTemperatureTolerance = 0.25;

using Trainable = std::function<bool(const std::string&)>;

Tensor bf16_values(const Tensor& t) { return t.to_bf16().to_f32(); }

// Weights with std 0.5 / sqrt(fan_in), norm weights near 1, biases and frequencies small; with
// `temperatures`, a log temperature per head (std 0.3) in each of `layers` blocks.
ParameterMap random_parameters(const std::vector<ParamSpec>& specs, uint64_t seed, bool temperatures = false,
                               int64_t layers = 0, int64_t heads = 0) {
  Rng rng(seed);
  ParameterMap p;
  for (const ParamSpec& s : specs) {
    const bool vector = s.shape.size() == 1, norm = s.name.find("norm") != std::string::npos;
    if (vector && norm && s.name.ends_with(".weight"))
      p[s.name] = add_scalar(rng.normal_tensor(s.shape, 0.1f), 1.0f);
    else if (vector || s.name == "pos_frequencies")
      p[s.name] = rng.normal_tensor(s.shape, 0.05f);
    else
      p[s.name] = rng.normal_tensor(s.shape, 0.5f / std::sqrt(static_cast<float>(numel(s.shape) / s.shape[0])));
    p[s.name] = bf16_values(p[s.name]);
  }
  for (int i = 0; temperatures && i < layers; ++i)
    p[joint_temperature_key(i)] = bf16_values(rng.normal_tensor({heads}, 0.3f));
  return p;
}

struct Run {
  Tensor velocity;  // on the CPU, float32
  ParameterMap grads;
};

// Builds Model(config, params) with the `trainable` parameters requiring gradients, moves it to
// `device`, runs `forward` and the backward of sum(velocity * grad_velocity).
template <class Model, class Config>
Run run_on(Device device, const Config& config, const ParameterMap& params, const Trainable& trainable,
           const std::function<Tensor(const Model&, Device)>& forward, const Tensor& grad_velocity) {
  ParameterMap p;
  for (const auto& [key, value] : params) {
    p[key] = value.clone();
    if (trainable(key)) p[key].set_requires_grad(true);
  }
  Model model(config, p);
  model.to(device);
  const Tensor velocity = forward(model, device);
  sum_all(mul(velocity, grad_velocity.to(device))).backward();
  Run run{velocity.to(Device::cpu()).to_f32(), {}};
  for (const auto& [key, value] : model.parameters()) {
    if (!trainable(key)) continue;
    EXPECT_EQ(value.dtype(), DType::F32) << key << ": a trainable parameter stays float32";
    if (value.grad().defined()) run.grads[key] = value.grad().to(Device::cpu());
  }
  return run;
}

void expect_match(const Run& cpu, const Run& gpu) {
  EXPECT_LE(testing::relative_error(gpu.velocity, cpu.velocity), kTolerance) << "velocity";
  double largest = 0.0;
  for (const auto& [key, grad] : cpu.grads) largest = std::max(largest, testing::max_abs(grad));
  ASSERT_GT(largest, 0.0);
  for (const auto& [key, expected] : cpu.grads) {
    ASSERT_TRUE(gpu.grads.count(key)) << key << " got no gradient on the GPU";
    const double scale = std::max(testing::max_abs(expected), 1e-2 * largest);
    const bool temperature = key.ends_with(".log_temperature");
    EXPECT_LE(testing::max_abs_difference(gpu.grads.at(key), expected) / scale,
              temperature ? kTemperatureTolerance : kTolerance)
        << key;
  }
}

template <class Model, class Config>
void expect_gpu_matches_cpu(const Config& config, const ParameterMap& params, const Trainable& trainable,
                            const std::function<Tensor(const Model&, Device)>& forward, const Shape& velocity_shape) {
  Rng rng(5);
  const Tensor grad_velocity = bf16_values(rng.normal_tensor(velocity_shape));
  expect_match(run_on<Model>(Device::cpu(), config, params, trainable, forward, grad_velocity),
               run_on<Model>(Device::cuda(0), config, params, trainable, forward, grad_velocity));
}

bool in_last_block(const std::string& key, int64_t layers) {
  return key.rfind("transformer_blocks." + std::to_string(layers - 1) + ".", 0) == 0;
}

bool is_temperature(const std::string& key) { return key.ends_with(".log_temperature"); }

class CudaMochi : public ::testing::Test {
 protected:
  void check(const Trainable& trainable, bool temperatures = false) {
    const MochiConfig c{.patch_size = 2,
                        .num_attention_heads = 2,
                        .attention_head_dim = 64,
                        .num_layers = 2,
                        .pooled_projection_dim = 48,
                        .in_channels = 4,
                        .out_channels = 4,
                        .text_embed_dim = 64,
                        .time_embed_dim = 16,
                        .max_sequence_length = 8};
    Rng rng(3);
    const Tensor latents = bf16_values(rng.normal_tensor({1, 4, 2, 4, 6}));
    const Tensor context = bf16_values(rng.normal_tensor({1, 5, 64}));
    const Tensor mask = Tensor::from_vector({1, 5}, {1, 1, 1, 0, 0});  // a padded caption
    expect_gpu_matches_cpu<MochiModel>(
        c, random_parameters(mochi_parameter_specs(c), 7, temperatures, c.num_layers, c.num_attention_heads), trainable,
        [&](const MochiModel& m, Device d) { return m.forward(latents.to(d), {630.0}, context.to(d), mask.to(d)); },
        {1, 4, 2, 4, 6});
  }
};

TEST_F(CudaMochi, EveryParameterButTheFrequenciesTrainable) {
  VDIT_REQUIRE_GPU();
  check([](const std::string& key) { return key != "pos_frequencies"; });
}

TEST_F(CudaMochi, FrozenModelWithOneTrainableBlock) {
  VDIT_REQUIRE_GPU();
  check([](const std::string& key) { return in_last_block(key, 2); });
}

TEST_F(CudaMochi, TemperaturesWithEveryParameterButTheFrequenciesTrainable) {
  VDIT_REQUIRE_GPU();
  check([](const std::string& key) { return key != "pos_frequencies"; }, true);
}

TEST_F(CudaMochi, OnlyTemperaturesTrainable) {
  VDIT_REQUIRE_GPU();
  check(is_temperature, true);
}

class CudaCogVideoX : public ::testing::Test {
 protected:
  void check(const Trainable& trainable, bool temperatures = false) {
    const CogVideoXConfig c{.num_attention_heads = 2,
                            .attention_head_dim = 64,
                            .in_channels = 4,
                            .out_channels = 4,
                            .time_embed_dim = 32,
                            .text_embed_dim = 24,
                            .num_layers = 2,
                            .max_text_seq_length = 5};
    Rng rng(4);
    const Tensor latents = bf16_values(rng.normal_tensor({1, 4, 2, 4, 6}));
    const Tensor context = bf16_values(rng.normal_tensor({1, 5, 24}));
    expect_gpu_matches_cpu<CogVideoXModel>(
        c, random_parameters(cogvideox_parameter_specs(c), 8, temperatures, c.num_layers, c.num_attention_heads),
        trainable,
        [&](const CogVideoXModel& m, Device d) { return m.forward(latents.to(d), {630.0}, context.to(d)); },
        {1, 4, 2, 4, 6});
  }
};

TEST_F(CudaCogVideoX, EveryParameterTrainable) {
  VDIT_REQUIRE_GPU();
  check([](const std::string&) { return true; });
}

TEST_F(CudaCogVideoX, FrozenModelWithOneTrainableBlock) {
  VDIT_REQUIRE_GPU();
  check([](const std::string& key) { return in_last_block(key, 2); });
}

TEST_F(CudaCogVideoX, TemperaturesWithEveryParameterTrainable) {
  VDIT_REQUIRE_GPU();
  check([](const std::string&) { return true; }, true);
}

TEST_F(CudaCogVideoX, OnlyTemperaturesTrainable) {
  VDIT_REQUIRE_GPU();
  check(is_temperature, true);
}

}  // namespace
}  // namespace vdit
