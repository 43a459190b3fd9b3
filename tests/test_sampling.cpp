// The Euler flow-matching sampler against the same steps done by hand.
#include <gtest/gtest.h>

#include <filesystem>

#include "autograd/random.h"
#include "autograd/tape.h"
#include "data/hdf5_file.h"
#include "data/video_io.h"
#include "layers/init.h"
#include "layers/vdit.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/flow_matching.h"
#include "train/sampling.h"

namespace vdit {
namespace {

VDiTConfig small_config() { return testing::small_config({.dim = 24, .ffn_dim = 32, .num_heads = 2, .num_layers = 2, .in_dim = 3}); }

VDiT small_model() { return VDiT(small_config(), testing::params_with_random_head(small_config(), 3, 0.3f)); }

TEST(Sampling, TwoGuidedStepsMatchTheEquations) {
  const VDiT model = small_model();
  Rng rng(5);
  const Tensor context = rng.normal_tensor({3, 6});
  SamplingOptions o;
  o.steps = 2;
  o.guidance = 3.0;
  o.shift = 2.0;
  o.seed = 9;
  const Tensor got = sample(model, {3, 2, 4, 4}, context, o);

  NoGradScope no_grad;
  Rng noise(9);
  Tensor x = noise.normal_tensor({1, 3, 2, 4, 4});
  const Tensor cond = concat({reshape(context, {1, 3, 6}), Tensor::zeros({1, 2, 6})}, 1);
  const Tensor uncond = Tensor::zeros({1, 5, 6});
  const std::vector<double> sigmas = {1.0, shift_sigma(0.5, 2.0), 0.0};
  for (int i = 0; i < 2; ++i) {
    const Tensor vc = model.forward(x, {1000.0 * sigmas[i]}, cond);
    const Tensor vu = model.forward(x, {1000.0 * sigmas[i]}, uncond);
    const Tensor v = add(vu, scale(sub(vc, vu), 3.0f));
    x = add(x, scale(v, static_cast<float>(sigmas[i + 1] - sigmas[i])));
  }
  const std::vector<float> expected = x.to_vector();
  EXPECT_TRUE(testing::all_close(got.to_vector(), std::vector<double>(expected.begin(), expected.end()), 1e-5));
}

TEST(Sampling, UnconditionalAndUnguidedUseOneCallPerStep) {
  const VDiT model = small_model();
  SamplingOptions o;
  o.steps = 1;
  o.seed = 2;
  const Tensor got = sample(model, {3, 1, 2, 2}, Tensor(), o);
  NoGradScope no_grad;
  Rng noise(2);
  const Tensor x = noise.normal_tensor({1, 3, 1, 2, 2});
  const Tensor v = model.forward(x, {1000.0}, Tensor::zeros({1, 5, 6}));
  EXPECT_EQ(testing::bit_pattern(got), testing::bit_pattern(reshape(sub(x, v), {3, 1, 2, 2})));
}

TEST(SampleCommand, WritesAnMp4ForPixelModelsAndLatentsOtherwise) {
  if (!video_io_available()) GTEST_SKIP() << "built with -DVDITKIT_VIDEO=OFF: no MP4 or PNG samples";
  testing::ScratchDir dir;
  ASSERT_EQ(testing::run_vditkit("create --preset pixel-tiny --layers 1 --out " + dir / "pixel.h5").exit_code, 0);
  const testing::CommandResult video = testing::run_vditkit(
      "sample --model " + dir / "pixel.h5" + " --prompt 'a red square moves left' --frames 2 --size 8x8 --steps 2 --out " +
      dir / "v.mp4");
  ASSERT_EQ(video.exit_code, 0) << video.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "v.mp4"));
  ASSERT_EQ(testing::run_vditkit("create --preset tiny --layers 1 --out " + dir / "latent.h5").exit_code, 0);
  const testing::CommandResult refused =
      testing::run_vditkit("sample --model " + dir / "latent.h5" + " --steps 1 --out " + dir / "x.mp4");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("MP4 needs a pixel-space model"), std::string::npos) << refused.output;
  const testing::CommandResult latents = testing::run_vditkit(
      "sample --model " + dir / "latent.h5" + " --frames 1 --size 4x4 --steps 1 --guidance 1 --out " + dir / "x.h5");
  ASSERT_EQ(latents.exit_code, 0) << latents.output;
  EXPECT_EQ(Hdf5File(dir / "x.h5", Hdf5File::Mode::Read).shape("latents"), (Shape{16, 1, 4, 4}));
}

}  // namespace
}  // namespace vdit
