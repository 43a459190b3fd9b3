// Temperature tuning: unit temperatures change nothing, the log-temperature gradient passes a
// numeric check, adapters are tied to their model, and a tiny model taught by itself at known
// temperatures recovers them.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/check.h"
#include "autograd/gradcheck.h"
#include "data/adapter.h"
#include "data/model_io.h"
#include "data/synthetic_data.h"
#include "layers/init.h"
#include "layers/vdit.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/temperature.h"
#include "train/trainer.h"

namespace vdit {
namespace {

using testing::bit_pattern;
using testing::wan_model;
using testing::run_vditkit;
using testing::ScratchDir;

VDiTConfig small_config() {
  return testing::small_config({.dim = 32, .ffn_dim = 48, .num_heads = 2, .num_layers = 3, .text_dim = 8, .text_len = 6, .freq_dim = 16});
}

ParameterMap small_params(uint64_t seed = 1) { return testing::params_with_random_head(small_config(), seed, 0.3f); }

Tensor run(const VDiT& model) {
  Rng rng(9);
  NoGradScope no_grad;
  return model.forward(rng.normal_tensor({2, 4, 2, 4, 4}), {300.0, 800.0}, rng.normal_tensor({2, 5, 8}));
}

TEST(Temperature, UnitTemperaturesLeaveTheOutputBitIdentical) {
  const VDiT plain(small_config(), small_params());
  for (const auto granularity : {TemperatureGranularity::Head, TemperatureGranularity::Block}) {
    ParameterMap params = small_params();
    for (const auto& [key, value] : unit_temperatures(wan_model(small_config()), {0, 1, 2}, granularity, /*cross_attn=*/true))
      params[key] = value;
    EXPECT_EQ(bit_pattern(run(VDiT(small_config(), params))), bit_pattern(run(plain))) << to_string(granularity);
  }
}

TEST(Temperature, TemperaturesChangeTheOutput) {
  ParameterMap params = small_params();
  for (const auto& [key, value] : fixed_temperatures("1:2.0", wan_model(small_config()), "--set-temperature")) params[key] = value;
  EXPECT_NE(bit_pattern(run(VDiT(small_config(), params))), bit_pattern(run(VDiT(small_config(), small_params()))));
}

TEST(Temperature, LogTemperatureGradientPassesANumericCheck) {
  for (const int64_t width : {int64_t{2}, int64_t{1}}) {  // per head, per block
    Rng rng(4);
    AttentionLayer layer;
    layer.num_heads = 2;
    for (Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o})
      *l = {rng.normal_tensor({12, 12}, 0.5f), rng.normal_tensor({12}, 0.1f)};
    layer.norm_q = {Tensor::full({12}, 1.0f), 1e-6f};
    layer.norm_k = {Tensor::full({12}, 1.0f), 1e-6f};
    const RopeTables rope = make_rope_tables({1, 2, 3}, 6);
    Tensor log_tau = rng.normal_tensor({width}, 0.3f);
    log_tau.set_requires_grad(true);
    const Tensor x = rng.normal_tensor({1, 6, 12});
    const GradCheckResult r = check_gradients(
        [&](const std::vector<Tensor>& in) {
          AttentionLayer l = layer;
          l.log_temperature = in[0];
          return l.self_attention(x, rope);
        },
        {log_tau}, 1e-3);
    EXPECT_LT(r.relative(), 1e-2) << r.worst;
  }
}

TEST(Temperature, AdapterIsRefusedForAnotherModel) {
  ScratchDir dir;
  Adapter adapter;
  adapter.model_identity = model_identity(small_config(), small_params(1));
  adapter.log_temperatures = unit_temperatures(wan_model(small_config()), {0}, TemperatureGranularity::Head, false);
  write_adapter(dir / "a.h5", adapter);
  ParameterMap same = small_params(1), other = small_params(2);
  EXPECT_NO_THROW(apply_adapter(dir / "a.h5", read_adapter(dir / "a.h5"), model_identity(small_config(), same), same));
  EXPECT_EQ(same.count(log_temperature_key(0)), 1u);
  try {
    apply_adapter(dir / "a.h5", read_adapter(dir / "a.h5"), model_identity(small_config(), other), other);
    FAIL() << "an adapter for another model was applied";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.h5: adapter made for model " + adapter.model_identity), std::string::npos)
        << e.what();
  }
}

TEST(Temperature, IdentityIgnoresStorageDtypeButNotValues) {
  ParameterMap narrow = small_params(1);
  for (auto& [key, value] : narrow) value = value.to_bf16().to_f32();
  ParameterMap narrow_bf16 = narrow;
  for (auto& [key, value] : narrow_bf16) value = value.to_bf16();
  EXPECT_EQ(model_identity(small_config(), narrow), model_identity(small_config(), narrow_bf16));
  EXPECT_NE(model_identity(small_config(), narrow), model_identity(small_config(), small_params(1)));
}

TEST(Temperature, FixedTemperatureSpecErrors) {
  const VDiTConfig c = small_config();
  EXPECT_THROW(fixed_temperatures("1", wan_model(c), "--set-temperature"), Error);
  EXPECT_THROW(fixed_temperatures("1:abc", wan_model(c), "--set-temperature"), Error);
  EXPECT_THROW(fixed_temperatures("1:-2", wan_model(c), "--set-temperature"), Error);
  EXPECT_THROW(fixed_temperatures("9:1.5", wan_model(c), "--set-temperature"), Error);
  const ParameterMap two = fixed_temperatures("0-1:1.5;2:0.5", wan_model(c), "--set-temperature");
  ASSERT_EQ(two.size(), 3u);
  EXPECT_FLOAT_EQ(std::exp(two.at(log_temperature_key(1)).item()), 1.5f);
  EXPECT_FLOAT_EQ(std::exp(two.at(log_temperature_key(2)).item()), 0.5f);
}

// Writes model.h5 and data.h5 for a self-teaching run.
void write_model_and_data(const ScratchDir& dir) {
  save_model(dir / "model.h5", small_config(), small_params(), ModelFormat::H5);
  write_latent_dataset(dir / "data.h5", testing::small_synthetic_samples(16));
}

TEST(Temperature, SelfTaughtModelRecoversKnownTemperatures) {
  ScratchDir dir;
  write_model_and_data(dir);
  RetrainOptions o;
  o.model = dir / "model.h5";
  o.data = {dir / "data.h5"};
  o.out = dir / "run";
  o.tune_temperature = true;
  o.granularity = TemperatureGranularity::Block;
  o.teacher = dir / "model.h5";
  o.teacher_temperature = "0:1.6;1:0.7;2:1.3";
  o.steps = 300;
  o.batch_size = 4;
  o.lr.base_lr = 0.05;
  o.lr.decay = LrDecay::Cosine;
  o.adamw.weight_decay = 0.0;
  o.flow.shift = 1.0;
  Retrainer trainer(o);
  trainer.run(nullptr);
  const Adapter learnt = read_adapter(adapter_path(o.out));
  const std::map<int, double> expected = {{0, 1.6}, {1, 0.7}, {2, 1.3}};
  for (const auto& [block, tau] : expected) {
    const double got = std::exp(learnt.log_temperatures.at(log_temperature_key(block)).item());
    EXPECT_NEAR(got, tau, 0.05 * tau) << "block " << block;
  }
}

// Tuned with the weights held as bf16 (as on a GPU), the adapter still belongs to the model as
// stored: inspect, loading it in float32, accepts it.
TEST(TemperatureCommand, TuneThenForwardAndInspectWithTheAdapter) {
  ScratchDir dir;
  write_model_and_data(dir);
  const testing::CommandResult tuned = run_vditkit(
      "tune-temperature --model " + dir / "model.h5" + " --data " + dir / "data.h5" + " --out " + dir / "run" +
      " --blocks 1-2 --steps 3 --cross-attn --frozen-bf16");
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  const Adapter adapter = read_adapter(dir / "run/adapter.h5");
  EXPECT_EQ(adapter.log_temperatures.size(), 4u);  // blocks 1 and 2, self and cross
  EXPECT_EQ(adapter.log_temperatures.at(log_temperature_key(1)).shape(), (Shape{2}));
  EXPECT_TRUE(std::filesystem::exists(dir / "run/checkpoint-000003/adapter.h5"));

  const testing::CommandResult shown = run_vditkit("inspect " + dir / "model.h5" + " --adapter " + dir / "run/adapter.h5");
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_NE(shown.output.find("blocks.2.cross_attn"), std::string::npos) << shown.output;

  save_model(dir / "other.h5", small_config(), small_params(5), ModelFormat::H5);
  const testing::CommandResult refused = run_vditkit("inspect " + dir / "other.h5" + " --adapter " + dir / "run/adapter.h5");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("adapter made for model"), std::string::npos) << refused.output;
}

}  // namespace
}  // namespace vdit
