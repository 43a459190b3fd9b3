// Our Mochi-1 forward pass and every gradient against the independent float64 PyTorch reference
// (tests/reference/mochi_reference.py) on tiny random models: non-square frames, F > 1, a padded
// caption (context_mask) and an unmasked one, heads with their own learned RoPE frequencies, and
// the last block's context_pre_only form.
#include <gtest/gtest.h>

#include "data/family_config_json.h"
#include "layers/mochi_model.h"
#include "tests/family_parity.h"

namespace vdit {
namespace {

using testing::FamilyParityCase;
using testing::FamilyReference;

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
            "--heads 3 --head-dim 4 --layers 3 --text-width 9 --channels 2 --frames 3 --height 6 --width 2 --ctx-len 4 --seed 2"}),
    [](const ::testing::TestParamInfo<FamilyParityCase>& info) { return info.param.name; });

}  // namespace
}  // namespace vdit
