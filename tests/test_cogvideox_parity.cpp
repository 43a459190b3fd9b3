// Our CogVideoX-2b forward pass and every gradient against the independent float64 PyTorch
// reference (tests/reference/cogvideox_reference.py) on tiny random models: non-square frames,
// F > 1, out_channels != in_channels, patch 1 and 2, a non-default spatial interpolation scale,
// per-block temperatures. Then the attention hooks: the probe's view of each block's joint
// attention, and the temperatures' keys.
#include <gtest/gtest.h>

#include "autograd/random.h"
#include "data/family_config_json.h"
#include "layers/cogvideox_model.h"
#include "tests/family_parity.h"

namespace vdit {
namespace {

using testing::FamilyParityCase;
using testing::FamilyReference;
using testing::RecordingProbe;

class CogVideoXParity : public ::testing::TestWithParam<FamilyParityCase> {
 protected:
  void SetUp() override {
    reference_ = std::make_unique<FamilyReference>("cogvideox_reference.py", GetParam().args, dir_);
    ASSERT_TRUE(reference_->ok());
    config_ = cogvideox_config_from_json(reference_->config_json, "reference weights");
  }

  testing::ScratchDir dir_;
  std::unique_ptr<FamilyReference> reference_;
  CogVideoXConfig config_;
};

TEST_P(CogVideoXParity, ForwardMatchesReference) {
  const CogVideoXModel model(config_, reference_->params);
  const Tensor velocity =
      model.forward(reference_->batched("latents"), {reference_->timestep()}, reference_->batched("context"));
  EXPECT_LE(testing::relative_error(reshape(velocity, reference_->output->shape("velocity")),
                                    reference_->output->read("velocity")),
            1e-5);
}

TEST_P(CogVideoXParity, EveryGradientMatchesReference) {
  ParameterMap params = reference_->params;
  for (auto& [key, tensor] : params) tensor.set_requires_grad(true);
  std::map<std::string, Tensor> tensors = params;
  tensors["latents"] = reference_->batched("latents").set_requires_grad(true);
  tensors["context"] = reference_->batched("context").set_requires_grad(true);
  const CogVideoXModel model(config_, params);
  const Tensor velocity = model.forward(tensors["latents"], {reference_->timestep()}, tensors["context"]);
  sum_all(mul(velocity, reference_->batched("grad_velocity"))).backward();
  testing::expect_gradients_match(tensors, *reference_->output, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    TinyConfigs, CogVideoXParity,
    ::testing::Values(
        FamilyParityCase{"base",
                         "--heads 2 --head-dim 8 --layers 2 --frames 2 --height 4 --width 6 --text-len 5 --seed 1"},
        FamilyParityCase{
            "patch_1_scale_1",
            "--heads 3 --head-dim 16 --layers 1 --patch 1 --channels 2 --frames 3 --height 3 --width 5 --text-len 3 --spatial-scale-x8 8 --seed 2"},
        FamilyParityCase{
            "block_temperatures",
            "--heads 2 --head-dim 8 --layers 2 --frames 2 --height 4 --width 6 --text-len 5 --temperature block --seed 3"}),
    [](const ::testing::TestParamInfo<FamilyParityCase>& info) { return info.param.name; });

// Two blocks, two heads of 8, 12 video tokens after a text of 5 rows; small enough to build
// without the reference.
class CogVideoXAttentionHooks : public ::testing::Test {
 protected:
  static constexpr int64_t kTokens = 12, kText = 5;
  CogVideoXModel model(int64_t temperature_width) const {
    return {config_, testing::random_family_parameters(cogvideox_parameter_specs(config_), 2, temperature_width, 1)};
  }
  // The staged forward, a probe watching every block.
  Tensor staged(const CogVideoXModel& model, AttentionProbe* probe) const {
    const CogVideoXModel::Embedded embedded = model.embed(latents_, {400.0}, context_);
    TokenStreams streams = embedded.streams;
    for (int i = 0; i < config_.num_layers; ++i) streams = model.run_block(i, streams, embedded, probe);
    return model.run_head(streams, embedded);
  }

  CogVideoXConfig config_{.num_attention_heads = 2, .attention_head_dim = 8, .in_channels = 3, .out_channels = 3,
                          .time_embed_dim = 12, .text_embed_dim = 10, .num_layers = 2, .patch_size = 2,
                          .max_text_seq_length = kText};
  Rng rng_{9};
  Tensor latents_ = rng_.normal_tensor({1, 3, 2, 4, 6});
  Tensor context_ = rng_.normal_tensor({1, kText, 10});
};

TEST_F(CogVideoXAttentionHooks, ProbeSeesOneJointCallPerBlockWithTextThenVideoRows) {
  RecordingProbe probe(RecordingProbe::Answer::Nothing);
  staged(model(1), &probe);
  ASSERT_EQ(probe.calls.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const RecordingProbe::Seen& call = probe.calls[i];
    EXPECT_EQ(call.block, i);
    EXPECT_EQ(call.kind, AttentionKind::Joint);
    EXPECT_EQ(call.q, (Shape{1, kText + kTokens, 2, 8}));
    EXPECT_EQ(call.k, call.q);
    EXPECT_EQ(call.v, call.q);
    EXPECT_EQ(testing::layout_fields(call.joint), (std::vector<int64_t>{kText, kTokens, 0, kText}));
    EXPECT_FALSE(call.key_mask.defined()) << "CogVideoX masks no row";
    EXPECT_TRUE(call.tempered);
  }
}

TEST_F(CogVideoXAttentionHooks, ProbeAnswersReplaceTheAttention) {
  const CogVideoXModel m = model(2);
  testing::expect_probe_answers_replace_the_attention([&](AttentionProbe* probe) { return staged(m, probe); });
}

TEST_F(CogVideoXAttentionHooks, TemperatureKeysAreCheckedAndSetParametersAddsThem) {
  testing::expect_temperature_keys_checked<CogVideoXModel>(
      config_, testing::random_family_parameters(cogvideox_parameter_specs(config_), 2, 0, 1), 2, 2,
      [&](const CogVideoXModel& m) { return staged(m, nullptr); });
}

}  // namespace
}  // namespace vdit
