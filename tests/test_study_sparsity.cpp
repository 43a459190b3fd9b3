// study sparsity: keeping every key changes nothing; the errors of a model with a planted sink
// match the float64 reference of tests/reference (wan_reference.py sparsity); the sensitivity
// rule; the command's files and its errors for bad flags.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "autograd/random.h"
#include "data/hdf5_file.h"
#include "data/model_io.h"
#include "diagnostics/probe_set.h"
#include "diagnostics/sparsity_study.h"
#include "layers/vdit.h"
#include "tests/fixtures.h"
#include "tests/planted_sink.h"

namespace vdit {
namespace {

using testing::ScratchDir;

TEST(StudySparsity, KeepingEveryKeyGivesZeroError) {
  ScratchDir dir;
  testing::write_marked_data(dir / "data.h5");
  const VDiT model(testing::small_config(), testing::planted_sink_params());
  SparsityStudyOptions options;
  options.keep = {1.0, 0.3};
  options.sigmas = {0.5};
  const SparsityStudy study = run_sparsity_study(model, LatentDataset::open({dir / "data.h5"}), options);
  ASSERT_EQ(study.velocity_error.size(), 6u);
  EXPECT_EQ(study.all_blocks_velocity_error[0], 0.0);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ(study.velocity_error[b * 2], 0.0) << "block " << b;
    EXPECT_EQ(study.block_output_error[b * 2], 0.0) << "block " << b;
    EXPECT_GT(study.velocity_error[b * 2 + 1], 1e-4) << "block " << b;  // keep 0.3 does change something
  }
}

// Writes probe sample s at level sigma as the reference's forward input.
void write_reference_input(const std::string& path, const LatentSample& sample, int64_t s, double sigma, uint64_t seed) {
  Hdf5File f(path, Hdf5File::Mode::Create);
  const Tensor latents = probe_latents(sample, s, sigma, seed);
  f.write("latents", reshape(latents, {latents.size(1), latents.size(2), latents.size(3), latents.size(4)}));
  f.write("timestep", Tensor::from_vector({}, {static_cast<float>(1000.0 * sigma)}));
  f.write("context", sample.context);
  f.close();
}

// The planted sink with its block's query and key weights perturbed: the plain planting has
// keys that the RMS norm leaves equal up to noise (and a uniform second head), so which of the
// tied keys a query keeps would be decided by rounding, in float32 and float64 differently.
ParameterMap sink_without_ties() {
  ParameterMap p = testing::planted_sink_params();
  Rng rng(9);
  for (const char* key : {"blocks.0.self_attn.q.weight", "blocks.0.self_attn.k.weight"})
    p[key] = add(p[key], rng.normal_tensor(p[key].shape(), 0.3f));
  return p;
}

TEST(StudySparsity, PlantedSinkErrorsMatchTheFloat64Reference) {
  ScratchDir dir;
  testing::write_marked_data(dir / "data.h5");
  save_model(dir / "model.h5", testing::small_config(), sink_without_ties(), ModelFormat::H5);
  const LatentDataset data = LatentDataset::open({dir / "data.h5"});
  SparsityStudyOptions options;
  options.keep = {0.5, 0.1};
  options.sigmas = {0.001, 0.6};
  const VDiT model(testing::small_config(), sink_without_ties());
  const SparsityStudy study = run_sparsity_study(model, data, options);

  std::string inputs;
  for (size_t t = 0; t < options.sigmas.size(); ++t)
    for (int64_t s = 0; s < 2; ++s) {
      const std::string path = dir / ("in_" + std::to_string(t) + "_" + std::to_string(s) + ".h5");
      write_reference_input(path, data.read(s), s, options.sigmas[t], options.noise_seed);
      inputs += " " + path;
    }
  const testing::CommandResult r =
      testing::run_reference("sparsity " + dir / "model.h5" + " " + dir / "ref.h5" + " --keep 0.5,0.1" + inputs);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Hdf5File ref(dir / "ref.h5", Hdf5File::Mode::Read);
  const auto expect_matches = [&](const std::string& name, const std::vector<double>& actual) {
    const std::vector<float> expected = ref.read(name).to_vector();
    ASSERT_EQ(expected.size(), actual.size()) << name;
    for (size_t i = 0; i < actual.size(); ++i)
      EXPECT_NEAR(actual[i], expected[i], 1e-3 * expected[i] + 2e-6) << name << "[" << i << "]";
  };
  expect_matches("velocity_error", study.velocity_error);
  expect_matches("block_output_error", study.block_output_error);
  expect_matches("all_blocks_velocity_error", study.all_blocks_velocity_error);
  for (double e : study.velocity_error) EXPECT_GT(e, 1e-4);  // every block's sparsification shows
}

TEST(StudySparsity, SensitiveBlocksStandFarAboveTheOthersMedian) {
  SparsityStudy study;
  study.keep = {0.5, 0.1};
  study.blocks = 4;
  // Level 0: block 2 is over 3x the others' median (0.02) but under median + floor (0.07): not
  // sensitive. Level 1: block 3 at 0.5 is far above median 0.1 and 0.1 + 0.05.
  study.velocity_error = {0.02, 0.1, 0.02, 0.1, 0.065, 0.1, 0.02, 0.5};
  const std::vector<SensitiveBlock> sensitive = sensitive_blocks(study, SensitivityRule{});
  ASSERT_EQ(sensitive.size(), 1u);
  EXPECT_EQ(sensitive[0].block, 3);
  EXPECT_EQ(sensitive[0].levels, std::vector<int64_t>{1});
  study.blocks = 1;
  study.velocity_error = {0.9, 0.9};
  EXPECT_TRUE(sensitive_blocks(study, SensitivityRule{}).empty());
}

TEST(StudySparsity, CommandWritesTheStudy) {
  ScratchDir dir;
  testing::write_marked_data(dir / "data.h5");
  save_model(dir / "model.h5", testing::small_config(), testing::planted_sink_params(), ModelFormat::H5);
  const testing::CommandResult r = testing::run_vditkit("study sparsity --model " + dir / "model.h5" + " --data " +
                                                        dir / "data.h5" + " --out " + dir / "out" +
                                                        " --keep 1,0.25 --timesteps 0.5 --probe-samples 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("sensitive blocks:"), std::string::npos) << r.output;
  const Hdf5File f(dir / "out/sparsity.h5", Hdf5File::Mode::Read);
  EXPECT_EQ(f.shape("velocity_error"), (Shape{3, 2}));
  EXPECT_EQ(f.shape("block_output_error"), (Shape{3, 2}));
  EXPECT_EQ(f.shape("all_blocks_velocity_error"), (Shape{2}));
  EXPECT_EQ(f.read("keep").to_vector(), (std::vector<float>{1.0f, 0.25f}));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/report.html"));
}

TEST(StudySparsity, BadFlagsAreOneLineErrors) {
  for (const auto& [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {"--keep 0.5,0", "--keep: '0' is not a fraction of keys in (0, 1]"},
           {"--keep 1.5", "--keep: '1.5' is not a fraction of keys in (0, 1]"},
           {"--keep abc", "--keep: 'abc' is not a fraction of keys in (0, 1]"},
           {"--timesteps 2", "--timesteps: '2' is not a noise level in (0, 1]"},
           {"--probe-samples 0", "--probe-samples must be at least 1"},
           {"--sensitive-ratio 0.5", "--sensitive-ratio must be at least 1"}}) {
    const testing::CommandResult r =
        testing::run_vditkit("study sparsity --model m.h5 --data d.h5 --out o " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.output;
    EXPECT_NE(r.output.find("vditkit study: " + message), std::string::npos) << flags << ": " << r.output;
  }
  const testing::CommandResult r = testing::run_vditkit("study sparsify");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown study 'sparsify' (studies: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sparsity"), std::string::npos) << r.output;  // the list names this study
}

}  // namespace
}  // namespace vdit
