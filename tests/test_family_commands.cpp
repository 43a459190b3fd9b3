// Mochi-1 and CogVideoX-2b through the commands that move and run models: `convert` between
// .h5 and diffusers directories (float32 and bf16) and `forward` on a padded caption give the
// model's own velocity, and `retrain` trains exactly the sub-module it is given, also with
// --frozen-bf16 and --recompute-frozen.
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "data/hdf5_file.h"
#include "data/model_families.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "tests/run_comparison.h"

namespace vdit {
namespace {

using testing::run_vditkit;
using testing::ScratchDir;

const char* const kJointPresets[] = {"mochi-tiny", "cogvideox-tiny"};

void expect_runs(const std::string& args) {
  const testing::CommandResult r = run_vditkit(args);
  ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.output;
}

// A forward input for the tiny presets (latents [16, 2, 4, 6], 8 text rows, the last three
// padding), written to `path` as `forward` reads it and returned as the model takes it.
ModelInputs write_forward_input(const std::string& path, const ModelFacts& facts) {
  Rng rng(3);
  const Tensor latents = rng.normal_tensor({facts.in_channels, 2, 4, 6});
  const Tensor context = rng.normal_tensor({8, facts.text_dim});
  const Tensor mask = Tensor::from_vector({8}, {1, 1, 1, 1, 1, 0, 0, 0});
  Hdf5File f(path, Hdf5File::Mode::Create);
  f.write("latents", latents);
  f.write("timestep", Tensor::full({}, 420.0f));
  f.write("context", context);
  f.write("context_mask", mask);
  return {reshape(latents, {1, facts.in_channels, 2, 4, 6}), {420.0}, reshape(context, {1, 8, facts.text_dim}),
          reshape(mask, {1, 8})};
}

std::vector<float> forward_velocity(const std::string& model, const std::string& input, const std::string& output,
                                    const std::string& flags = "") {
  expect_runs("forward --model " + model + " --input " + input + " --output " + output + flags);
  return Hdf5File(output, Hdf5File::Mode::Read).read("velocity").to_vector();
}

TEST(FamilyCommands, ConvertedModelsForwardToTheModelsOwnVelocity) {
  ScratchDir dir;
  for (const std::string preset : kJointPresets) {
    const std::string m = dir / (preset + ".h5"), in = dir / (preset + "-in.h5"), out = dir / "out.h5";
    expect_runs("create --preset " + preset + " --layers 2 --out " + m);
    expect_runs("convert " + m + " " + dir / (preset + "-dir"));
    expect_runs("convert " + dir / (preset + "-dir") + " " + dir / (preset + "-back.h5"));
    expect_runs("convert " + m + " " + dir / (preset + "-bf16") + " --bf16");
    const testing::CommandResult original =
        run_vditkit("convert " + m + " " + dir / (preset + "-orig") + " --layout original");
    EXPECT_EQ(original.exit_code, 1);
    EXPECT_NE(original.output.find("has only the diffusers layout"), std::string::npos) << original.output;
    const std::unique_ptr<Model> model = load_family_model(m).model;
    const std::vector<float> expected = model->velocity(write_forward_input(in, model->facts()), nullptr).to_vector();
    EXPECT_GT(testing::max_abs(Tensor::from_vector({static_cast<int64_t>(expected.size())}, expected)), 0.0);
    for (const std::string& copy : {preset + ".h5", preset + "-dir", preset + "-back.h5"})
      EXPECT_EQ(forward_velocity(dir / copy, in, out), expected) << copy;
    // bf16 weights: the velocity moves by about bf16's rounding (2^-8 relative), not more.
    for (const std::string& flags : {std::string(" --frozen-bf16"), std::string()}) {
      const std::string source = flags.empty() ? dir / (preset + "-bf16") : m;
      const std::vector<float> rounded = forward_velocity(source, in, out, flags);
      ASSERT_EQ(rounded.size(), expected.size());
      double worst = 0, scale = 0;
      for (size_t i = 0; i < expected.size(); ++i) {
        worst = std::max(worst, std::abs(static_cast<double>(rounded[i]) - expected[i]));
        scale = std::max(scale, std::abs(static_cast<double>(expected[i])));
      }
      EXPECT_GT(worst, 0.0) << preset << flags << ": bf16 weights changed nothing";
      EXPECT_LT(worst, 0.05 * scale) << preset << flags;
    }
  }
}

// The loss of every step a run logged.
std::vector<double> logged_losses(const std::string& run_dir) {
  std::vector<double> losses;
  for (const nlohmann::json& record : testing::step_records(run_dir)) losses.push_back(record["loss"]);
  return losses;
}

// The parameters of `checkpoint`'s model.h5 whose values differ from `base`'s.
std::vector<std::string> changed_parameters(const Model& base, const std::string& checkpoint) {
  const std::unique_ptr<Model> trained = load_family_model(checkpoint + "/model.h5").model;
  std::vector<std::string> changed;
  for (const auto& [key, value] : trained->parameters())
    if (value.to_vector() != base.parameters().at(key).to_vector()) changed.push_back(key);
  return changed;
}

TEST(FamilyCommands, RetrainTrainsExactlyTheChosenSubModule) {
  ScratchDir dir;
  expect_runs("make-data --preset tiny --samples 4 --height 4 --width 6 --frames 2 --out " + dir / "data.h5");
  for (const std::string preset : kJointPresets) {
    const std::string m = dir / (preset + ".h5");
    expect_runs("create --preset " + preset + " --layers 3 --out " + m);
    const std::unique_ptr<Model> base = load_family_model(m).model;
    const std::string retrain = "retrain --no-diagnostics --batch-size 2 --steps 2 --model " + m + " --data " +
                                dir / "data.h5" + " --layers 1.attn";
    expect_runs(retrain + " --out " + dir / (preset + "-attn"));
    const std::vector<std::string> changed = changed_parameters(*base, dir / (preset + "-attn/checkpoint-000002"));
    ASSERT_FALSE(changed.empty()) << preset;
    for (const std::string& key : changed)
      EXPECT_TRUE(key.starts_with("transformer_blocks.1.attn1.")) << preset << ": " << key << " changed";
    // Frozen weights as bf16 and block 2 recomputed in the backward: the same sub-module trains,
    // and the losses stay within bf16's reach of the float32 run's.
    expect_runs(retrain + " --frozen-bf16 --recompute-frozen --out " + dir / (preset + "-bf16"));
    const std::vector<double> exact = logged_losses(dir / (preset + "-attn"));
    const std::vector<double> bf16 = logged_losses(dir / (preset + "-bf16"));
    ASSERT_EQ(exact.size(), 2u);
    ASSERT_EQ(bf16.size(), 2u);
    for (size_t i = 0; i < exact.size(); ++i) EXPECT_NEAR(bf16[i], exact[i], 0.02 * exact[i]) << preset << " step " << i;
  }
}

}  // namespace
}  // namespace vdit
