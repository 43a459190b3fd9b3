// Models through files and the command: the .h5 and safetensors formats (both key layouts)
// round-trip and give the same velocity; every bad model or input is one clear error line
// naming the file and the key, with a non-zero exit.
#include <gtest/gtest.h>

#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/check.h"
#include "data/hdf5_file.h"
#include "data/model_config.h"
#include "data/model_io.h"
#include "data/safetensors.h"
#include "layers/init.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::CommandResult;
using testing::run_vditkit;
using testing::ScratchDir;

VDiTConfig small_config() { return testing::small_config({.dim = 16, .ffn_dim = 24, .num_heads = 2, .num_layers = 2}); }

ParameterMap small_params() { return testing::params_with_random_head(small_config(), 7, 0.2f); }

void write_input(const std::string& path, const Shape& latents, const Shape& context, float timestep = 500.0f) {
  Rng rng(11);
  Hdf5File f(path, Hdf5File::Mode::Create);
  f.write("latents", rng.normal_tensor(latents));
  f.write("timestep", Tensor::full({}, timestep));
  f.write("context", rng.normal_tensor(context));
}

void expect_one_line_error(const CommandResult& r, const std::string& what, const std::string& also) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(what), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(also), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(ModelIo, H5RoundTripKeepsConfigAndValues) {
  ScratchDir dir;
  const ParameterMap params = small_params();
  save_model(dir / "m.h5", small_config(), params, ModelFormat::H5);
  const LoadedModel loaded = load_model(dir / "m.h5");
  EXPECT_EQ(loaded.config, small_config());
  ASSERT_EQ(loaded.params.size(), params.size());
  for (const auto& [key, t] : params) EXPECT_EQ(loaded.params.at(key).to_vector(), t.to_vector()) << key;
}

TEST(ModelIo, AllFormatsGiveTheSameVelocity) {
  ScratchDir dir;
  save_model(dir / "m.h5", small_config(), small_params(), ModelFormat::H5);
  write_input(dir / "in.h5", {4, 2, 4, 6}, {3, 6});
  ASSERT_EQ(run_vditkit("convert " + dir / "m.h5" + " " + dir / "orig.safetensors").exit_code, 0);
  ASSERT_EQ(run_vditkit("convert " + dir / "orig.safetensors" + " " + dir / "diffusers --layout diffusers").exit_code, 0);
  ASSERT_EQ(run_vditkit("convert " + dir / "diffusers" + " " + dir / "back.h5").exit_code, 0);
  std::vector<std::vector<float>> velocities;
  for (const std::string model : {"m.h5", "orig.safetensors", "diffusers", "back.h5"}) {
    const CommandResult r =
        run_vditkit("forward --model " + dir / model + " --input " + dir / "in.h5" + " --output " + dir / "out.h5");
    ASSERT_EQ(r.exit_code, 0) << model << ": " << r.output;
    const Tensor v = Hdf5File(dir / "out.h5", Hdf5File::Mode::Read).read("velocity");
    EXPECT_EQ(v.shape(), (Shape{4, 2, 4, 6}));
    velocities.push_back(v.to_vector());
  }
  for (size_t i = 1; i < velocities.size(); ++i) EXPECT_EQ(velocities[i], velocities[0]) << "format " << i;
  EXPECT_GT(testing::max_abs(Tensor::from_vector({static_cast<int64_t>(velocities[0].size())}, velocities[0])), 0.0);
}

TEST(ModelIo, Bf16FrozenWeightsStayBf16AndStayClose) {
  ScratchDir dir;
  save_model(dir / "m.safetensors", small_config(), small_params(), ModelFormat::Safetensors, /*bf16=*/true);
  LoadOptions bf16;
  bf16.frozen_bf16 = true;
  const LoadedModel narrow = load_model(dir / "m.safetensors", bf16);
  const LoadedModel wide = load_model(dir / "m.safetensors");
  EXPECT_EQ(narrow.params.at("blocks.0.ffn.0.weight").dtype(), DType::BF16);
  EXPECT_EQ(wide.params.at("blocks.0.ffn.0.weight").dtype(), DType::F32);
  EXPECT_EQ(narrow.params.at("blocks.0.ffn.0.weight").to_f32().to_vector(),
            wide.params.at("blocks.0.ffn.0.weight").to_vector());
}

TEST(ModelIo, ConfigComesFromConfigJsonOfEitherLayout) {
  ScratchDir dir;
  save_model(dir / "d", small_config(), small_params(), ModelFormat::SafetensorsDiffusers);
  EXPECT_EQ(load_model(dir / "d").config, small_config());
  save_model(dir / "o", small_config(), small_params(), ModelFormat::Safetensors);
  EXPECT_EQ(load_model(dir / "o").config, small_config());
}

// --- bad models ---

// Writes `params` as m.safetensors beside a config.json of `config`, bypassing save_model's
// checks, and returns the path.
std::string write_unchecked(const ScratchDir& dir, const ParameterMap& params, const VDiTConfig& config) {
  write_safetensors(dir / "m.safetensors", {params.begin(), params.end()}, SafetensorsDType::F32);
  std::ofstream(dir / "config.json") << config_to_json(config).dump();
  return dir / "m.safetensors";
}

TEST(ModelIoErrors, MissingKeyIsNamed) {
  ScratchDir dir;
  ParameterMap params = small_params();
  params.erase("blocks.1.cross_attn.v.bias");
  expect_one_line_error(run_vditkit("inspect " + write_unchecked(dir, params, small_config())), "m.safetensors",
                        "missing parameter 'blocks.1.cross_attn.v.bias'");
}

TEST(ModelIoErrors, UnexpectedKeyIsNamed) {
  ScratchDir dir;
  ParameterMap params = small_params();
  params["blocks.0.self_attn.lora_a"] = Tensor::zeros({2});
  expect_one_line_error(run_vditkit("inspect " + write_unchecked(dir, params, small_config())), "m.safetensors",
                        "unexpected parameter 'blocks.0.self_attn.lora_a'");
}

TEST(ModelIoErrors, ShapeDisagreeingWithConfigIsNamed) {
  ScratchDir dir;
  VDiTConfig wider = small_config();
  wider.ffn_dim = 32;
  expect_one_line_error(run_vditkit("inspect " + write_unchecked(dir, small_params(), wider)), "m.safetensors",
                        "'blocks.0.ffn.0.weight' has shape [24, 16] but the config needs [32, 16]");
}

TEST(ModelIoErrors, UndeterminableHeadCountAsksForAConfig) {
  ScratchDir dir;
  const ParameterMap params = small_params();
  write_safetensors(dir / "m.safetensors", {params.begin(), params.end()}, SafetensorsDType::F32);
  expect_one_line_error(run_vditkit("inspect " + dir / "m.safetensors"), "m.safetensors", "cannot determine num_heads");
}

TEST(ModelIoErrors, MalformedConfigJsonNamesTheByte) {
  ScratchDir dir;
  const std::string model = write_unchecked(dir, small_params(), small_config());
  std::ofstream(dir / "config.json") << "{\"dim\": 16,, }";
  expect_one_line_error(run_vditkit("inspect " + model), "config.json", "malformed JSON at byte");
}

// Issue 12: out_dim was derived by dividing by the patch volume before the config was
// checked, and a zero patch side killed the command with SIGFPE.
TEST(ModelIoErrors, ZeroPatchSideIsAnErrorBeforeAnyDivision) {
  ScratchDir dir;
  const std::string model = write_unchecked(dir, small_params(), small_config());
  nlohmann::json config = config_to_json(small_config());
  config["patch_size"] = {1, 0, 2};
  config.erase("out_dim");
  std::ofstream(dir / "config.json") << config.dump();
  expect_one_line_error(run_vditkit("inspect " + model), "m.safetensors", "patch_size [1, 0, 2] must hold integers in 1..64");
}

TEST(ModelIoErrors, HeadRowsNotAMultipleOfThePatchVolumeAreNamed) {
  ScratchDir dir;
  const std::string model = write_unchecked(dir, small_params(), small_config());
  nlohmann::json config = config_to_json(small_config());
  config["patch_size"] = {1, 3, 3};  // head.head.weight has 4 * out_dim rows
  config.erase("out_dim");
  std::ofstream(dir / "config.json") << config.dump();
  expect_one_line_error(run_vditkit("inspect " + model), "m.safetensors", "head.head.weight has 16 rows, not a multiple of the patch volume 9");
}

TEST(ModelIoErrors, TruncatedCheckpointThroughTheCommand) {
  ScratchDir dir;
  save_model(dir / "m.safetensors", small_config(), small_params(), ModelFormat::Safetensors);
  std::filesystem::resize_file(dir / "m.safetensors", std::filesystem::file_size(dir / "m.safetensors") / 2);
  const CommandResult r = run_vditkit("forward --model " + dir / "m.safetensors" + " --input x.h5 --output y.h5");
  expect_one_line_error(r, "m.safetensors", "data_offsets");
}

// --- bad forward inputs ---

class ForwardInputErrors : public ::testing::Test {
 protected:
  void SetUp() override { save_model(dir_ / "m.h5", small_config(), small_params(), ModelFormat::H5); }
  CommandResult forward() {
    return run_vditkit("forward --model " + dir_ / "m.h5" + " --input " + dir_ / "in.h5" + " --output " + dir_ / "out.h5");
  }
  ScratchDir dir_;
};

TEST_F(ForwardInputErrors, HeightNotDivisibleByPatch) {
  write_input(dir_ / "in.h5", {4, 2, 5, 6}, {3, 6});
  expect_one_line_error(forward(), "in.h5", "latents height 5 is not divisible by the patch size 2");
}

TEST_F(ForwardInputErrors, WidthNotDivisibleByPatch) {
  write_input(dir_ / "in.h5", {4, 2, 4, 7}, {3, 6});
  expect_one_line_error(forward(), "in.h5", "latents width 7 is not divisible by the patch size 2");
}

TEST_F(ForwardInputErrors, ContextWiderThanTextDim) {
  write_input(dir_ / "in.h5", {4, 2, 4, 6}, {3, 9});
  expect_one_line_error(forward(), "in.h5", "context must be [L, 6], got [3, 9]");
}

TEST_F(ForwardInputErrors, ContextLongerThanTextLen) {
  write_input(dir_ / "in.h5", {4, 2, 4, 6}, {8, 6});
  expect_one_line_error(forward(), "in.h5", "context has 8 tokens, more than text_len 5");
}

TEST_F(ForwardInputErrors, WrongChannelCount) {
  write_input(dir_ / "in.h5", {3, 2, 4, 6}, {3, 6});
  expect_one_line_error(forward(), "in.h5", "latents must be [4, F, H, W], got [3, 2, 4, 6]");
}

TEST_F(ForwardInputErrors, TimestepOutOfRange) {
  write_input(dir_ / "in.h5", {4, 2, 4, 6}, {3, 6}, 1500.0f);
  expect_one_line_error(forward(), "in.h5", "timestep 1500 is outside [0, 1000]");
}

TEST_F(ForwardInputErrors, MissingDatasetIsNamed) {
  {
    Hdf5File f(dir_ / "in.h5", Hdf5File::Mode::Create);
    f.write("latents", Tensor::zeros({4, 2, 4, 6}));
  }
  expect_one_line_error(forward(), "in.h5", "no dataset 'timestep'");
}

// Issue 12: a NaN in the latents went through the model into a NaN velocity, exit 0.
TEST_F(ForwardInputErrors, NonFiniteLatentsAreNamedWithTheirIndex) {
  write_input(dir_ / "in.h5", {4, 2, 4, 6}, {3, 6});
  {
    Tensor latents = Hdf5File(dir_ / "in.h5", Hdf5File::Mode::Read).read("latents");
    latents.data()[48 + 2 * 6 + 5] = NAN;  // [1, 0, 2, 5]
    write_hdf5_atomically(dir_ / "in.h5", [&](Hdf5File& f) {
      f.write("latents", latents);
      f.write("timestep", Tensor::full({}, 500.0f));
      f.write("context", Tensor::zeros({3, 6}));
    });
  }
  expect_one_line_error(forward(), "in.h5: dataset 'latents' holds nan at index [1, 0, 2, 5]", "");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.h5"));
  const CommandResult allowed = run_vditkit("forward --allow-nonfinite --model " + dir_ / "m.h5" + " --input " +
                                            dir_ / "in.h5" + " --output " + dir_ / "out.h5");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
}

TEST_F(ForwardInputErrors, NonFiniteContextIsNamed) {
  write_hdf5_atomically(dir_ / "in.h5", [&](Hdf5File& f) {
    f.write("latents", Tensor::zeros({4, 2, 4, 6}));
    f.write("timestep", Tensor::full({}, 500.0f));
    Tensor context = Tensor::zeros({3, 6});
    context.data()[7] = -INFINITY;
    f.write("context", context);
  });
  expect_one_line_error(forward(), "in.h5: dataset 'context' holds -inf at index [1, 1]", "");
}

TEST_F(ForwardInputErrors, IntegerTimestepIsANumber) {
  Rng rng(11);
  {
    Hdf5File f(dir_ / "in.h5", Hdf5File::Mode::Create);
    f.write("latents", rng.normal_tensor({4, 2, 4, 6}));
    f.write("context", rng.normal_tensor({3, 6}));
  }
  const hid_t file = H5Fopen((dir_ / "in.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t d = H5Dcreate2(file, "timestep", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const int64_t t = 500;
  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &t);
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(file);
  const CommandResult r = forward();
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(ForwardInputErrors, NotAnHdf5File) {
  std::ofstream(dir_ / "in.h5") << "latents";
  expect_one_line_error(forward(), "in.h5", "not a readable HDF5 file");
}

}  // namespace
}  // namespace vdit
