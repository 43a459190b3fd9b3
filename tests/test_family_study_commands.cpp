// `vditkit sample` and the studies (transfer, perturb, sparsity) end to end on a tiny Mochi-1
// (its prompts are padded captions) and a tiny CogVideoX-2b checkpoint: transferring a prompt's
// maps onto itself reproduces the plain sample bit for bit, perturbing changes it, and every
// study writes its files with sane numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/hdf5_file.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::bit_pattern;
using testing::run_vditkit;
using testing::ScratchDir;

const char* const kJointPresets[] = {"mochi-tiny", "cogvideox-tiny"};
const std::string kSampling = " --frames 2 --size 4x4 --steps 2 --guidance 2 ";

Tensor read_dataset(const std::string& path, const std::string& name) {
  return Hdf5File(path, Hdf5File::Mode::Read).read(name);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Runs `args` and expects success, printing the output when it fails.
void expect_runs(const std::string& args) {
  const testing::CommandResult r = run_vditkit(args);
  ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.output;
}

// A family's checkpoint (two blocks) and its plain sample of 'a red square', in `dir`/`preset`.
struct FamilyRun {
  FamilyRun(const ScratchDir& dir, const std::string& preset) : preset(preset), dir(dir / preset) {
    std::filesystem::create_directories(this->dir);
    model = this->dir + "/model.h5";
    expect_runs("create --preset " + preset + " --layers 2 --out " + model);
    expect_runs("sample --model " + model + kSampling + "--prompt 'a red square' --out " + path("plain.h5"));
    plain = read_dataset(path("plain.h5"), "latents");
  }
  std::string path(const std::string& name) const { return dir + "/" + name; }
  std::string preset, dir, model;
  Tensor plain;
};

TEST(FamilyStudyCommands, SampleWritesFiniteLatentsAndTransferOntoItselfIsThePlainSample) {
  ScratchDir dir;
  for (const char* preset : kJointPresets) {
    const FamilyRun run(dir, preset);
    EXPECT_EQ(run.plain.shape(), (Shape{16, 2, 4, 4})) << preset;
    for (float x : run.plain.to_vector()) ASSERT_TRUE(std::isfinite(x)) << preset;
    const std::string base = "sample --model " + run.model + kSampling;
    expect_runs(base + "--prompt 'a red square' --transfer-from 'a red square' --out " + run.path("t.h5"));
    EXPECT_EQ(bit_pattern(read_dataset(run.path("t.h5"), "latents")), bit_pattern(run.plain)) << preset;
    expect_runs(base + "--prompt 'a blue circle' --out " + run.path("other.h5"));
    EXPECT_GT(testing::max_abs_difference(read_dataset(run.path("other.h5"), "latents"), run.plain), 1e-4) << preset;
  }
}

TEST(FamilyStudyCommands, TransferStudyOfAPromptOntoItselfReproducesThePlainSample) {
  ScratchDir dir;
  for (const char* preset : kJointPresets) {
    const FamilyRun run(dir, preset);
    const std::string base = "study transfer --model " + run.model + kSampling + "--prompt 'a red square' ";
    expect_runs(base + "--target 'a red square' --out " + run.path("same"));
    for (const char* name : {"source", "target", "block_0", "block_1", "all_blocks"})
      EXPECT_EQ(bit_pattern(read_dataset(run.path("same/samples.h5"), name)), bit_pattern(run.plain)) << preset << " " << name;
    for (const nlohmann::json& row : read_json(run.path("same/transfer.json"))["rows"])
      EXPECT_EQ(row["rms_to_source"], 0.0) << preset << " " << row["name"];

    expect_runs(base + "--target 'a blue circle' --out " + run.path("other"));
    const nlohmann::json json = read_json(run.path("other/transfer.json"));
    const double apart = json["plain_target"]["rms_to_source"];
    EXPECT_GT(apart, 1e-4) << preset;
    ASSERT_EQ(json["rows"].size(), 3u) << preset;
    for (const nlohmann::json& row : json["rows"]) {
      // Each transferred sample moved away from the plain target and stays on the scale of the
      // two plain samples' distance.
      EXPECT_GT(row["rms_to_target"].get<double>(), 1e-6) << preset << " " << row["name"];
      EXPECT_LT(row["rms_to_source"].get<double>(), 10 * apart) << preset << " " << row["name"];
    }
    EXPECT_TRUE(std::filesystem::exists(run.path("other/report.html"))) << preset;
  }
}

TEST(FamilyStudyCommands, PerturbStudyChangesTheSampleInEveryMode) {
  ScratchDir dir;
  for (const char* preset : kJointPresets) {
    const FamilyRun run(dir, preset);
    for (const std::string mode : {"identity", "uniform"}) {
      const std::string out = run.path(mode);
      expect_runs("study perturb --model " + run.model + kSampling + "--prompt 'a red square' --mode " + mode +
                  " --out " + out);
      EXPECT_EQ(bit_pattern(read_dataset(out + "/samples.h5", "unperturbed")), bit_pattern(run.plain)) << preset;
      const nlohmann::json json = read_json(out + "/perturb.json");
      ASSERT_EQ(json["entropy"].size(), 2u) << preset;
      for (double e : json["entropy"]) EXPECT_TRUE(e > 0.0 && e <= 1.0) << preset << " " << mode << ": " << e;
      ASSERT_EQ(json["rows"].size(), 3u) << preset;
      for (const nlohmann::json& row : json["rows"]) {
        const double rms = row["rms_to_reference"];
        EXPECT_TRUE(rms > 1e-4 && std::isfinite(rms)) << preset << " " << mode << " " << row["name"] << ": " << rms;
      }
    }
  }
}

TEST(FamilyStudyCommands, SparsityStudyKeepingEveryKeyChangesNothing) {
  ScratchDir dir;
  for (const char* preset : kJointPresets) {
    const FamilyRun run(dir, preset);
    expect_runs(std::string("make-data --preset ") + preset + " --samples 2 --height 4 --width 6 --frames 2 --out " +
                run.path("data.h5"));
    expect_runs("study sparsity --model " + run.model + " --data " + run.path("data.h5") + " --out " +
                run.path("sparsity") + " --keep 1,0.25 --timesteps 0.5 --probe-samples 1");
    const Hdf5File f(run.path("sparsity/sparsity.h5"), Hdf5File::Mode::Read);
    ASSERT_EQ(f.shape("velocity_error"), (Shape{2, 2})) << preset;
    const std::vector<float> error = f.read("velocity_error").to_vector();
    for (int b = 0; b < 2; ++b) {
      EXPECT_EQ(error[b * 2], 0.0f) << preset << " block " << b;
      EXPECT_TRUE(error[b * 2 + 1] > 1e-6f && std::isfinite(error[b * 2 + 1])) << preset << " block " << b;
    }
    EXPECT_TRUE(std::filesystem::exists(run.path("sparsity/report.html"))) << preset;
  }
}

}  // namespace
}  // namespace vdit
