// Our Wan2.1 forward pass and parameter gradients against the independent float64 PyTorch
// reference (tests/reference/wan_reference.py) on tiny random models that exercise what
// WAN21.md flags: uneven RoPE splits, F > 1, H != W, L < text_len, temperatures, optional norms.
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "data/hdf5_file.h"
#include "data/model_io.h"
#include "layers/vdit.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::relative_error;
using testing::run_reference;
using testing::ScratchDir;

struct ParityCase {
  std::string name;
  std::string args;  // wan_reference.py make-random options
};

std::ostream& operator<<(std::ostream& os, const ParityCase& c) { return os << c.name; }

Tensor batched(const Tensor& t) {
  Shape s = t.shape();
  s.insert(s.begin(), 1);
  return reshape(t, s);
}

Tensor unbatched(const Tensor& t) {
  Shape s = t.shape();
  s.erase(s.begin());
  return reshape(t, s);
}

class WanParity : public ::testing::TestWithParam<ParityCase> {
 protected:
  // Makes the random model and input, runs the reference, loads the model into ours.
  void SetUp() override {
    const std::string w = dir_ / "w.h5", in = dir_ / "in.h5", out = dir_ / "out.h5";
    auto made = run_reference("make-random " + w + " " + in + " --grad " + GetParam().args);
    ASSERT_EQ(made.exit_code, 0) << made.output;
    auto ran = run_reference("forward " + w + " " + in + " " + out);
    ASSERT_EQ(ran.exit_code, 0) << ran.output;
    LoadedModel loaded = load_model(w);
    config_ = loaded.config;
    params_ = loaded.params;
    input_ = std::make_unique<Hdf5File>(in, Hdf5File::Mode::Read);
    reference_ = std::make_unique<Hdf5File>(out, Hdf5File::Mode::Read);
  }

  Tensor run_forward(const VDiT& model) const {
    return model.forward(batched(input_->read("latents")), {input_->read("timestep").item()},
                         batched(input_->read("context")));
  }

  ScratchDir dir_;
  VDiTConfig config_;
  ParameterMap params_;
  std::unique_ptr<Hdf5File> input_, reference_;
};

TEST_P(WanParity, ForwardMatchesReference) {
  const VDiT model(config_, params_);
  const Tensor velocity = unbatched(run_forward(model));
  EXPECT_LE(relative_error(velocity, reference_->read("velocity")), 1e-5);
}

TEST_P(WanParity, ParameterGradientsMatchReference) {
  for (auto& [key, tensor] : params_) tensor.set_requires_grad(true);
  const VDiT model(config_, params_);
  const Tensor velocity = run_forward(model);
  sum_all(mul(velocity, batched(input_->read("grad_velocity")))).backward();
  // Some gradients are zero in exact arithmetic (without qk_norm, a key bias shifts every
  // logit of a query equally) and come out as float32 cancellation noise; every gradient is
  // judged at no less than 0.1% of the largest gradient's scale.
  double largest = 0.0;
  for (const auto& [key, tensor] : params_) largest = std::max(largest, testing::max_abs(reference_->read("grad/" + key)));
  for (const auto& [key, tensor] : params_) {
    ASSERT_TRUE(tensor.grad().defined()) << key << " got no gradient";
    const Tensor expected = reference_->read("grad/" + key);
    const double scale = std::max(testing::max_abs(expected), 1e-3 * largest);
    EXPECT_LE(testing::max_abs_difference(tensor.grad(), expected) / scale, 1e-4) << key;
  }
}

INSTANTIATE_TEST_SUITE_P(
    TinyConfigs, WanParity,
    ::testing::Values(
        ParityCase{"base", "--dim 24 --heads 2 --layers 2 --ffn 40 --frames 2 --height 6 --width 4 --ctx-len 5 --seed 1"},
        ParityCase{"uneven_rope", "--dim 60 --heads 3 --layers 1 --ffn 32 --frames 3 --height 4 --width 6 --ctx-len 7 --seed 2"},
        ParityCase{"temperature", "--dim 32 --heads 2 --layers 2 --ffn 48 --frames 2 --height 4 --width 8 --ctx-len 3 --temperature --seed 3"},
        ParityCase{"no_norms_patch_212", "--dim 36 --heads 3 --layers 1 --ffn 24 --frames 4 --height 2 --width 6 --patch 2 1 2 --ctx-len 7 --no-qk-norm --no-cross-attn-norm --seed 4"}),
    [](const ::testing::TestParamInfo<ParityCase>& info) { return info.param.name; });

}  // namespace
}  // namespace vdit
