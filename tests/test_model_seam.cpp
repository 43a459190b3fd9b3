// The model seam (layers/model.h, data/model_families.h): every family's staged forward equals
// its velocity, models round-trip through files with their family, the --layers vocabulary is
// the family's, frozen blocks recompute exactly, and a Mochi-1 and a CogVideoX-2b checkpoint
// retrain and resume exactly and tune temperatures through the commands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "autograd/tape.h"
#include "data/adapter.h"
#include "data/hdf5_file.h"
#include "data/model_families.h"
#include "layers/family_params.h"
#include "tests/fixtures.h"
#include "train/layer_selection.h"
#include "train/trainable.h"

namespace vdit {
namespace {

using testing::max_abs;
using testing::run_vditkit;
using testing::ScratchDir;

const char* const kFamilyPresets[] = {"tiny", "mochi-tiny", "cogvideox-tiny"};

// A batch of two that every tiny preset takes: latents [2, 16, 2, 4, 6] (non-square frames)
// and 8 text rows, the second sample's last three padding.
ModelInputs tiny_inputs(const ModelFacts& facts) {
  Rng rng(7);
  return {rng.normal_tensor({2, facts.in_channels, 2, 4, 6}), {300.0, 800.0}, rng.normal_tensor({2, 8, facts.text_dim}),
          Tensor::from_vector({2, 8}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0})};
}

std::vector<float> staged_velocity_of(const Model& model, const ModelInputs& inputs) {
  const std::unique_ptr<Model::Stage> stage = model.embed_stage(inputs);
  TokenStreams x = stage->streams;
  for (int b = 0; b < model.facts().num_blocks; ++b) x = model.block_stage(b, x, *stage, nullptr);
  return model.head_stage(x, *stage).to_vector();
}

TEST(ModelSeam, StagesComposeToTheVelocityInEveryFamily) {
  for (const char* preset : kFamilyPresets) {
    const std::unique_ptr<Model> model = create_family_model(preset, 2, 3);
    const ModelInputs inputs = tiny_inputs(model->facts());
    const Tensor v = model->velocity(inputs, nullptr);
    EXPECT_EQ(v.shape(), (Shape{2, model->facts().out_channels, 2, 4, 6})) << preset;
    EXPECT_EQ(staged_velocity_of(*model, inputs), v.to_vector()) << preset;
  }
}

TEST(ModelSeam, FamiliesRoundTripThroughH5AndDiffusersDirectories) {
  ScratchDir dir;
  for (const char* preset : kFamilyPresets) {
    const std::unique_ptr<Model> model = create_family_model(preset, 2, 5);
    const std::string h5 = dir / (std::string(preset) + ".h5"), dirs = dir / (std::string(preset) + "-dir");
    save_family_model(h5, *model, ModelFormat::H5);
    save_family_model(dirs, *model, ModelFormat::SafetensorsDiffusers);
    const ModelInputs inputs = tiny_inputs(model->facts());
    const std::vector<float> expected = model->velocity(inputs, nullptr).to_vector();
    for (const std::string& path : std::vector<std::string>{h5, dirs}) {
      const LoadedFamilyModel loaded = load_family_model(path);
      EXPECT_EQ(loaded.model->facts().family, model->facts().family) << path;
      EXPECT_EQ(family_config_json(*loaded.model), family_config_json(*model)) << path;
      EXPECT_EQ(family_model_identity(*loaded.model), family_model_identity(*model)) << path;
      EXPECT_EQ(loaded.model->velocity(inputs, nullptr).to_vector(), expected) << path;
    }
  }
  EXPECT_EQ(create_family_model("mochi-tiny", 2, 5)->facts().family, "mochi-1");
  EXPECT_NE(family_model_identity(*create_family_model("mochi-tiny", 2, 5)),
            family_model_identity(*create_family_model("mochi-tiny", 2, 6)));
}

TEST(ModelSeam, UnknownPresetsAndFamiliesAreNamed) {
  EXPECT_THAT(testing::error_of([] { create_family_model("mochi-2", 0, 0); }),
              ::testing::HasSubstr("unknown preset 'mochi-2' (known: tiny, pixel-tiny, wan-1.3b, wan-14b, mochi-tiny"));
  ScratchDir dir;
  const std::unique_ptr<Model> model = create_family_model("mochi-tiny", 1, 0);
  save_family_model(dir / "m.h5", *model, ModelFormat::H5);
  write_hdf5_atomically(dir / "bad.h5", [&](Hdf5File& f) {
    f.write_string("family", "hunyuan");
    f.write_string("config", "{}");
  });
  EXPECT_THAT(testing::error_of([&] { load_family_model(dir / "bad.h5"); }),
              ::testing::HasSubstr("bad.h5: unknown model family 'hunyuan'"));
  EXPECT_THAT(testing::error_of([&] { save_family_model(dir / "m.safetensors", *model, ModelFormat::Safetensors); }),
              ::testing::HasSubstr("written as a diffusers directory"));
}

TEST(ModelSeam, LayerVocabularyIsTheFamilys) {
  const std::unique_ptr<Model> mochi = create_family_model("mochi-tiny", 3, 0);
  const std::set<std::string> attn = parse_layer_spec("1.attn", *mochi).names;
  ASSERT_FALSE(attn.empty());
  for (const std::string& name : attn) EXPECT_TRUE(name.starts_with("transformer_blocks.1.attn1.")) << name;
  EXPECT_EQ(parse_layer_spec("head", *mochi).names,
            (std::set<std::string>{"norm_out.linear.bias", "norm_out.linear.weight", "proj_out.bias", "proj_out.weight"}));
  EXPECT_EQ(parse_layer_spec("2", *mochi).names, block_parameter_names(*mochi, {2}));
  EXPECT_EQ(first_selected_block(parse_layer_spec("2.modulation,1.ffn_context", *mochi).names, *mochi), 1);
  EXPECT_THAT(testing::error_of([&] { parse_layer_spec("1.cross_attn", *mochi); }),
              ::testing::HasSubstr("unknown sub-module 'cross_attn' (attn, ffn, ffn_context, modulation, norms)"));
  const std::unique_ptr<Model> cog = create_family_model("cogvideox-tiny", 2, 0);
  for (const std::string& name : parse_layer_spec("0.norms", *cog).names)
    EXPECT_THAT(name, ::testing::AnyOf(::testing::HasSubstr(".norm1.norm."), ::testing::HasSubstr(".norm2.norm."),
                                       ::testing::HasSubstr(".attn1.norm_")));
  EXPECT_EQ(parse_layer_spec("all", *cog).names.size(), cog->parameter_specs().size());
}

// Reinitialised parameters follow the family's rules: unit norm weights, zero biases, fresh
// weights unlike the loaded ones, drawn the same for the same seed.
TEST(ModelSeam, ReinitDrawsWithTheFamilysRules) {
  std::unique_ptr<Model> a = create_family_model("cogvideox-tiny", 2, 1), b = create_family_model("cogvideox-tiny", 2, 1);
  const std::set<std::string> names = parse_layer_spec("1", *a).names;
  const ParameterMap before = a->parameters();
  make_trainable(*a, names, InitMode::Reinit, 9);
  make_trainable(*b, names, InitMode::Reinit, 9);
  for (const std::string& name : names) {
    const std::vector<float> v = a->parameters().at(name).to_vector();
    EXPECT_EQ(v, b->parameters().at(name).to_vector()) << name;
    if (name.ends_with(".bias")) EXPECT_EQ(max_abs(a->parameters().at(name)), 0.0) << name;
    else if (name.ends_with("norm.weight") || name.find(".norm_") != std::string::npos)
      EXPECT_EQ(v, std::vector<float>(v.size(), 1.0f)) << name;
    else EXPECT_NE(v, before.at(name).to_vector()) << name;
  }
}

// Frozen blocks after the trained one rerun in the backward pass: the same loss and gradients.
TEST(ModelSeam, RecomputedFrozenBlocksGiveTheSameGradients) {
  for (const char* preset : {"mochi-tiny", "cogvideox-tiny"}) {
    std::vector<std::vector<float>> grads[2];
    float losses[2];
    for (int recompute = 0; recompute < 2; ++recompute) {
      std::unique_ptr<Model> model = create_family_model(preset, 3, 4);
      const std::vector<TrainableParameter> trained = make_trainable(*model, parse_layer_spec("0", *model).names,
                                                                     InitMode::Keep, 0);
      model->set_recompute_frozen_blocks(recompute == 1);
      Tape::clear();
      const Tensor loss = sum_all(square(model->velocity(tiny_inputs(model->facts()), nullptr)));
      loss.backward();
      losses[recompute] = loss.item();
      for (const TrainableParameter& p : trained) grads[recompute].push_back(p.value.grad().to_vector());
    }
    EXPECT_EQ(losses[0], losses[1]) << preset;
    EXPECT_EQ(grads[0], grads[1]) << preset;
  }
}

// The last record's loss and the trained weights of a run directory's newest checkpoint.
std::vector<float> trained_weights(const std::string& checkpoint) {
  const LoadedFamilyModel m = load_family_model(checkpoint + "/model.h5");
  std::vector<float> all;
  for (const auto& [key, value] : m.model->parameters())
    if (key.starts_with("transformer_blocks.1.")) {
      const std::vector<float> v = value.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
  return all;
}

// Issue 17, "Done when": a checkpoint of each family retrains and resumes exactly.
TEST(ModelSeam, FamilyCheckpointsRetrainAndResumeExactly) {
  ScratchDir dir;
  ASSERT_EQ(run_vditkit("make-data --preset tiny --samples 4 --height 4 --width 6 --frames 2 --out " + dir / "data.h5")
                .exit_code, 0);
  for (const std::string preset : {"mochi-tiny", "cogvideox-tiny"}) {
    const std::string model = dir / (preset + ".h5"), data = " --data " + dir / "data.h5";
    ASSERT_EQ(run_vditkit("create --preset " + preset + " --layers 2 --out " + model).exit_code, 0);
    const testing::CommandResult shown = run_vditkit("inspect " + model);
    ASSERT_EQ(shown.exit_code, 0) << shown.output;
    EXPECT_THAT(shown.output, ::testing::HasSubstr("attention joint (video and text)"));
    const std::string retrain = "retrain --no-diagnostics --layers 1 --batch-size 2 --model " + model + data;
    const testing::CommandResult whole = run_vditkit(retrain + " --steps 4 --out " + dir / (preset + "-whole"));
    ASSERT_EQ(whole.exit_code, 0) << whole.output;
    ASSERT_EQ(run_vditkit(retrain + " --steps 4 --checkpoint-every 2 --out " + dir / (preset + "-cut")).exit_code, 0);
    std::filesystem::remove_all(dir / (preset + "-cut/checkpoint-000004"));
    const testing::CommandResult resumed =
        run_vditkit("retrain --resume " + dir / (preset + "-cut/checkpoint-000002") + " --steps 4");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    const std::vector<float> a = trained_weights(dir / (preset + "-whole/checkpoint-000004"));
    EXPECT_FALSE(a.empty()) << preset;
    EXPECT_EQ(a, trained_weights(dir / (preset + "-cut/checkpoint-000004"))) << preset;
  }
}

// tune-temperature on a joint-attention family learns one temperature per head of each chosen
// block's joint attention, under the family's key; the adapter goes with the model it was made
// for; a cross-attention temperature is refused by the family's name.
TEST(ModelSeam, FamilyTemperaturesTuneIntoAnAdapter) {
  ScratchDir dir;
  ASSERT_EQ(run_vditkit("make-data --preset tiny --samples 4 --height 4 --width 6 --frames 2 --out " + dir / "data.h5")
                .exit_code, 0);
  for (const std::string preset : {"mochi-tiny", "cogvideox-tiny"}) {
    const std::string model = dir / (preset + ".h5"), out = dir / (preset + "-tau");
    ASSERT_EQ(run_vditkit("create --preset " + preset + " --layers 3 --out " + model).exit_code, 0);
    const std::string tune = "tune-temperature --batch-size 2 --steps 3 --lr 0.05 --blocks 1-2 --model " + model +
                             " --data " + dir / "data.h5";
    const testing::CommandResult tuned = run_vditkit(tune + " --out " + out);
    ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
    const Adapter adapter = read_adapter(out + "/adapter.h5");
    const int64_t heads = load_family_model(model).model->facts().num_heads;
    ASSERT_EQ(adapter.log_temperatures.size(), 2u) << preset;
    for (const int block : {1, 2}) {
      const Tensor& log_tau = adapter.log_temperatures.at(joint_temperature_key(block));
      EXPECT_EQ(log_tau.shape(), (Shape{heads})) << preset;
      EXPECT_GT(max_abs(log_tau), 0.0) << preset << ": block " << block << " learnt nothing";
    }
    const testing::CommandResult shown = run_vditkit("inspect " + model + " --adapter " + out + "/adapter.h5");
    ASSERT_EQ(shown.exit_code, 0) << shown.output;
    EXPECT_THAT(shown.output, ::testing::HasSubstr("transformer_blocks.2.attn1 "));  // its taus per head
    const testing::CommandResult cross = run_vditkit(tune + " --cross-attn --out " + out + "-cross");
    EXPECT_EQ(cross.exit_code, 1);
    EXPECT_THAT(cross.output, ::testing::HasSubstr("has no cross-attention"));
  }
}

}  // namespace
}  // namespace vdit
