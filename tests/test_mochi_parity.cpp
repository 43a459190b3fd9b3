// Our Mochi-1 forward pass and every gradient against the independent float64 PyTorch reference
// (tests/reference/mochi_reference.py) on tiny random models: non-square frames, F > 1, a padded
// caption (context_mask) and an unmasked one, heads with their own learned RoPE frequencies, and
// the last block's context_pre_only form, per-head and per-block temperatures. Then the attention
// hooks: the probe's view of each block's joint attention, and the temperatures' keys.
#include <gtest/gtest.h>

#include "autograd/random.h"
#include "data/family_config_json.h"
#include "layers/mochi_model.h"
#include "tests/family_parity.h"

namespace vdit {
namespace {

using testing::FamilyParityCase;
using testing::FamilyReference;
using testing::RecordingProbe;

class MochiParity : public ::testing::TestWithParam<FamilyParityCase> {
 protected:
  void SetUp() override {
    reference_ = std::make_unique<FamilyReference>("mochi_reference.py", GetParam().args, dir_);
    ASSERT_TRUE(reference_->ok());
    config_ = mochi_config_from_json(reference_->config_json, "reference weights");
  }
  Tensor forward(const MochiModel& model, const Tensor& latents, const Tensor& context) const {
    return model.forward(latents, {reference_->timestep()}, context, reference_->batched("context_mask"));
  }

  testing::ScratchDir dir_;
  std::unique_ptr<FamilyReference> reference_;
  MochiConfig config_;
};

TEST_P(MochiParity, ForwardMatchesReference) {
  const MochiModel model(config_, reference_->params);
  const Tensor velocity = forward(model, reference_->batched("latents"), reference_->batched("context"));
  EXPECT_LE(testing::relative_error(reshape(velocity, reference_->output->shape("velocity")),
                                    reference_->output->read("velocity")),
            1e-5);
}

TEST_P(MochiParity, EveryGradientMatchesReference) {
  ParameterMap params = reference_->params;
  for (auto& [key, tensor] : params) tensor.set_requires_grad(true);
  std::map<std::string, Tensor> tensors = params;
  tensors["latents"] = reference_->batched("latents").set_requires_grad(true);
  tensors["context"] = reference_->batched("context").set_requires_grad(true);
  const MochiModel model(config_, params);
  const Tensor velocity = forward(model, tensors["latents"], tensors["context"]);
  sum_all(mul(velocity, reference_->batched("grad_velocity"))).backward();
  testing::expect_gradients_match(tensors, *reference_->output, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    TinyConfigs, MochiParity,
    ::testing::Values(
        FamilyParityCase{
            "padded_caption",
            "--heads 2 --head-dim 8 --layers 2 --frames 2 --height 4 --width 6 --ctx-len 5 --real-rows 3 --seed 1"},
        FamilyParityCase{
            "three_blocks_full_caption",
            "--heads 3 --head-dim 4 --layers 3 --text-width 9 --channels 2 --frames 3 --height 6 --width 2 --ctx-len 4 --seed 2"},
        FamilyParityCase{"padded_caption_head_temperatures",
                         "--heads 2 --head-dim 8 --layers 2 --frames 2 --height 4 --width 6 --ctx-len 5 --real-rows 3 "
                         "--temperature head --seed 3"}),
    [](const ::testing::TestParamInfo<FamilyParityCase>& info) { return info.param.name; });

// Three blocks (the last context_pre_only), two heads of 8, 12 video tokens, a caption of 5 rows
// of which 3 are real; small enough to build without the reference.
class MochiAttentionHooks : public ::testing::Test {
 protected:
  static constexpr int64_t kTokens = 12, kText = 5, kReal = 3;
  MochiModel model(int64_t temperature_width) const {
    return {config_, testing::random_family_parameters(mochi_parameter_specs(config_), 3, temperature_width, 1)};
  }
  // The staged forward, a probe watching every block.
  Tensor staged(const MochiModel& model, AttentionProbe* probe) const {
    const MochiModel::Embedded embedded = model.embed(latents_, {400.0}, context_, mask_);
    TokenStreams streams = embedded.streams;
    for (int i = 0; i < config_.num_layers; ++i) streams = model.run_block(i, streams, embedded, probe);
    return model.run_head(streams, embedded);
  }

  MochiConfig config_{.patch_size = 2, .num_attention_heads = 2, .attention_head_dim = 8, .num_layers = 3,
                      .pooled_projection_dim = 12, .in_channels = 3, .out_channels = 3, .text_embed_dim = 16,
                      .time_embed_dim = 8, .max_sequence_length = 8};
  Rng rng_{9};
  Tensor latents_ = rng_.normal_tensor({1, 3, 2, 4, 6});
  Tensor context_ = rng_.normal_tensor({1, kText, 16});
  Tensor mask_ = Tensor::from_vector({1, kText}, {1, 1, 1, 0, 0});
};

TEST_F(MochiAttentionHooks, ProbeSeesOneJointCallPerBlockWithVideoThenTextKeys) {
  RecordingProbe probe(RecordingProbe::Answer::Nothing);
  staged(model(2), &probe);
  ASSERT_EQ(probe.calls.size(), 3u);
  std::vector<float> keep(kTokens + kText, 1.0f);  // padding rows masked, nothing else
  for (int64_t r = kReal; r < kText; ++r) keep[kTokens + r] = 0.0f;
  for (int i = 0; i < 3; ++i) {
    const RecordingProbe::Seen& call = probe.calls[i];
    EXPECT_EQ(call.block, i);
    EXPECT_EQ(call.kind, AttentionKind::Joint);
    EXPECT_EQ(call.k, (Shape{1, kTokens + kText, 2, 8}));
    EXPECT_EQ(call.v, call.k);
    // The last block's text stream ends: only its video rows query.
    EXPECT_EQ(call.q, (Shape{1, i == 2 ? kTokens : kTokens + kText, 2, 8})) << "block " << i;
    EXPECT_EQ(testing::layout_fields(call.joint), (std::vector<int64_t>{0, kTokens, kTokens, kText}));
    EXPECT_EQ(call.key_mask.to_vector(), keep);
    EXPECT_TRUE(call.tempered);
  }
}

TEST_F(MochiAttentionHooks, ProbeAnswersReplaceTheAttention) {
  const MochiModel m = model(2);
  testing::expect_probe_answers_replace_the_attention([&](AttentionProbe* probe) { return staged(m, probe); });
}

TEST_F(MochiAttentionHooks, TemperatureKeysAreCheckedAndSetParametersAddsThem) {
  testing::expect_temperature_keys_checked<MochiModel>(
      config_, testing::random_family_parameters(mochi_parameter_specs(config_), 3, 0, 1), 3, 2,
      [&](const MochiModel& m) { return staged(m, nullptr); });
}

}  // namespace
}  // namespace vdit
