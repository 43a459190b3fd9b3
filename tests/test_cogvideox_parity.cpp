// Our CogVideoX-2b forward pass and every gradient against the independent float64 PyTorch
// reference (tests/reference/cogvideox_reference.py) on tiny random models: non-square frames,
// F > 1, out_channels != in_channels, patch 1 and 2, a non-default spatial interpolation scale.
#include <gtest/gtest.h>

#include "data/family_config_json.h"
#include "layers/cogvideox_model.h"
#include "tests/family_parity.h"

namespace vdit {
namespace {

using testing::FamilyParityCase;
using testing::FamilyReference;

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
            "--heads 3 --head-dim 16 --layers 1 --patch 1 --channels 2 --frames 3 --height 3 --width 5 --text-len 3 --spatial-scale-x8 8 --seed 2"}),
    [](const ::testing::TestParamInfo<FamilyParityCase>& info) { return info.param.name; });

}  // namespace
}  // namespace vdit
