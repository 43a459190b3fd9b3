// The Mochi-1 and CogVideoX-2b models' configs and input checks (their numerics are checked
// against the float64 references in test_mochi_parity.cpp and test_cogvideox_parity.cpp).
#include <gtest/gtest.h>

#include "autograd/random.h"
#include "data/family_config_json.h"
#include "layers/cogvideox_model.h"
#include "layers/mochi_model.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::error_of;

// The error `f` throws contains `part` (the message is printed when it does not).
void expect_error(const std::function<void()>& f, const std::string& part) {
  const std::string message = error_of(f);
  EXPECT_NE(message.find(part), std::string::npos)
      << "error: '" << message << "', expected to contain '" << part << "'";
}

int64_t parameter_count(const std::vector<ParamSpec>& specs) {
  int64_t n = 0;
  for (const ParamSpec& s : specs) n += numel(s.shape);
  return n;
}

ParameterMap random_parameters(const std::vector<ParamSpec>& specs, uint64_t seed) {
  Rng rng(seed);
  ParameterMap params;
  for (const ParamSpec& s : specs) params[s.name] = rng.normal_tensor(s.shape, 0.3f);
  return params;
}

// The released transformer/config.json files' keys (MOCHI.md and COGVIDEOX.md, "Config").
const char* kMochiPreview = R"({"_class_name": "MochiTransformer3DModel", "activation_fn": "swiglu",
  "attention_head_dim": 128, "in_channels": 12, "max_sequence_length": 256, "num_attention_heads": 24,
  "num_layers": 48, "out_channels": null, "patch_size": 2, "pooled_projection_dim": 1536, "qk_norm": "rms_norm",
  "text_embed_dim": 4096, "time_embed_dim": 256})";
const char* kCogVideoX2b = R"({"_class_name": "CogVideoXTransformer3DModel", "activation_fn": "gelu-approximate",
  "attention_bias": true, "attention_head_dim": 64, "dropout": 0.0, "flip_sin_to_cos": true, "freq_shift": 0,
  "in_channels": 16, "max_text_seq_length": 226, "norm_elementwise_affine": true, "norm_eps": 1e-05,
  "num_attention_heads": 30, "num_layers": 30, "out_channels": 16, "patch_size": 2, "sample_frames": 49,
  "sample_height": 60, "sample_width": 90, "spatial_interpolation_scale": 1.875, "temporal_compression_ratio": 4,
  "temporal_interpolation_scale": 1.0, "text_embed_dim": 4096, "time_embed_dim": 512,
  "timestep_activation_fn": "silu", "use_learned_positional_embeddings": false,
  "use_rotary_positional_embeddings": false})";

TEST(FamilyConfig, ReleasedMochiConfigGivesTheTenBillionParameterModel) {
  const MochiConfig c = mochi_config_from_json(nlohmann::json::parse(kMochiPreview), "config.json");
  EXPECT_EQ(c, MochiConfig::mochi_1_preview());
  EXPECT_EQ(c.out_channels, 12);  // null: as many as go in
  EXPECT_EQ(parameter_count(mochi_parameter_specs(c)), 10'027'677'744);
}

TEST(FamilyConfig, ReleasedCogVideoX2bConfigGivesItsParameterCount) {
  const CogVideoXConfig c = cogvideox_config_from_json(nlohmann::json::parse(kCogVideoX2b), "config.json");
  EXPECT_EQ(c, CogVideoXConfig::cogvideox_2b());
  EXPECT_EQ(parameter_count(cogvideox_parameter_specs(c)), 1'693'783'872);
}

TEST(FamilyConfig, UnimplementedOptionsAndOtherClassesAreErrorsNamingTheKey) {
  nlohmann::json cog = nlohmann::json::parse(kCogVideoX2b);
  cog["use_rotary_positional_embeddings"] = true;
  expect_error([&] { cogvideox_config_from_json(cog, "c.json"); }, "c.json: use_rotary_positional_embeddings is true");
  nlohmann::json mochi = nlohmann::json::parse(kMochiPreview);
  mochi["num_layers"] = "48";
  expect_error([&] { mochi_config_from_json(mochi, "m.json"); }, "m.json: num_layers must be an integer");
  expect_error([&] { mochi_config_from_json(nlohmann::json::parse(kCogVideoX2b), "m.json"); },
               "_class_name is CogVideoXTransformer3DModel, expected MochiTransformer3DModel");
}

MochiConfig tiny_mochi() {
  return {.patch_size = 2, .num_attention_heads = 2, .attention_head_dim = 4, .num_layers = 2,
          .pooled_projection_dim = 6, .in_channels = 2, .out_channels = 2, .text_embed_dim = 8,
          .time_embed_dim = 4, .max_sequence_length = 6};
}

TEST(MochiModelInputs, PaddingRowsDoNotChangeTheVelocity) {
  const MochiConfig c = tiny_mochi();
  const MochiModel model(c, random_parameters(mochi_parameter_specs(c), 1));
  Rng rng(2);
  const Tensor latents = rng.normal_tensor({1, 2, 2, 4, 6});
  Tensor context = rng.normal_tensor({1, 5, 8});
  const Tensor mask = Tensor::from_vector({1, 5}, {1, 1, 1, 0, 0});
  const std::vector<float> before = model.forward(latents, {300.0}, context, mask).to_vector();
  for (int64_t i = 3 * 8; i < 5 * 8; ++i) context.data()[i] = 100.0f;
  EXPECT_EQ(model.forward(latents, {300.0}, context, mask).to_vector(), before);
  EXPECT_NE(model.forward(latents, {300.0}, context).to_vector(), before);  // no mask: every row is real
}

TEST(MochiModelInputs, BadMasksAndMissingParametersAreNamed) {
  const MochiConfig c = tiny_mochi();
  ParameterMap params = random_parameters(mochi_parameter_specs(c), 1);
  const MochiModel model(c, params);
  const Tensor latents = Tensor::zeros({1, 2, 1, 2, 2}), context = Tensor::zeros({1, 3, 8});
  expect_error(
      [&] {
        model.forward(latents, {1.0}, context, Tensor::from_vector({1, 3}, {1, 0.5f, 0}));
      },
      "holds 0.5 at row 1");
  expect_error([&] { model.forward(latents, {1.0}, context, Tensor::zeros({1, 3})); }, "no real row");
  expect_error([&] { model.forward(latents, {1.0}, Tensor::zeros({1, 7, 8})); }, "more than max_sequence_length 6");
  params.erase("transformer_blocks.1.attn1.norm_added_k.weight");
  expect_error([&] { MochiModel(c, params); }, "missing parameter 'transformer_blocks.1.attn1.norm_added_k.weight'");
}

TEST(CogVideoXModelInputs, ContextMustHaveExactlyMaxTextSeqLengthRows) {
  const CogVideoXConfig c{.num_attention_heads = 2, .attention_head_dim = 8, .in_channels = 2, .out_channels = 2,
                          .time_embed_dim = 4, .text_embed_dim = 3, .num_layers = 1, .max_text_seq_length = 4};
  const CogVideoXModel model(c, random_parameters(cogvideox_parameter_specs(c), 3));
  expect_error(
      [&] {
        model.forward(Tensor::zeros({1, 2, 1, 2, 2}), {1.0}, Tensor::zeros({1, 3, 3}));
      },
      "context has 3 rows; CogVideoX needs exactly max_text_seq_length 4");
}

}  // namespace
}  // namespace vdit
