// Our Wan2.1 forward pass and parameter gradients against the independent float64 PyTorch
// reference (tests/reference/wan_reference.py) on tiny random models that exercise what
// WAN21.md flags: uneven RoPE splits, F > 1, H != W, L < text_len, temperatures, optional norms.
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "data/hdf5_file.h"
#include "data/model_config.h"
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
    // The reference stores temperatures as tau; we learn log tau.
    ParameterMap tau_params;
    {
      const Hdf5File weights(w, Hdf5File::Mode::Read);
      config_ = read_config_attributes(weights);
      for (const std::string& key : weights.datasets()) tau_params[key] = weights.read(key);
    }
    for (const auto& [key, value] : tau_params) {
      if (!is_reference_temperature(key)) {
        params_[key] = value;
        continue;
      }
      taus_[key] = value;
      params_[our_key(key)] = log(value);
    }
    input_ = std::make_unique<Hdf5File>(in, Hdf5File::Mode::Read);
    reference_ = std::make_unique<Hdf5File>(out, Hdf5File::Mode::Read);
  }

  Tensor run_forward(const VDiT& model) const {
    return model.forward(batched(input_->read("latents")), {input_->read("timestep").item()},
                         batched(input_->read("context")));
  }

  static bool is_reference_temperature(const std::string& key) {
    return key.size() > 12 && key.compare(key.size() - 12, 12, ".temperature") == 0;
  }
  static std::string our_key(const std::string& reference_key) {
    return reference_key.substr(0, reference_key.size() - 11) + "log_temperature";
  }

  ScratchDir dir_;
  VDiTConfig config_;
  ParameterMap params_;
  std::map<std::string, Tensor> taus_;  // reference temperature key -> tau
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
  // d/d log tau = tau d/d tau.
  auto expected_grad = [&](const std::string& key) {
    for (const auto& [tau_key, tau] : taus_)
      if (our_key(tau_key) == key) return mul(reference_->read("grad/" + tau_key), tau);
    return reference_->read("grad/" + key);
  };
  for (const auto& [key, tensor] : params_) largest = std::max(largest, testing::max_abs(expected_grad(key)));
  for (const auto& [key, tensor] : params_) {
    ASSERT_TRUE(tensor.grad().defined()) << key << " got no gradient";
    const Tensor expected = expected_grad(key);
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
