#pragma once
// What the Mochi-1 and CogVideoX-2b parity tests share: running their float64 reference
// (tests/reference/<family>_reference.py) on a tiny random model, reading its weights, inputs and
// outputs, and judging every gradient the way test_wan_parity.cpp does; a probe that records the
// joint-attention calls; the checks of the optional temperatures' keys.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/random.h"
#include "data/hdf5_file.h"
#include "layers/attention_probe.h"
#include "layers/family_params.h"
#include "layers/parameter_map.h"
#include "tests/fixtures.h"

namespace vdit::testing {

struct FamilyParityCase {
  std::string name;
  std::string args;  // <family>_reference.py make-random options
};

inline std::ostream& operator<<(std::ostream& os, const FamilyParityCase& c) { return os << c.name; }

// One reference run: weights (config.json from the "config" attribute), inputs, outputs.
class FamilyReference {
 public:
  FamilyReference(const std::string& script, const std::string& args, const ScratchDir& dir) {
    const std::string w = dir / "w.h5", in = dir / "in.h5", out = dir / "out.h5";
    const CommandResult ran =
        run_command(std::string(VDITKIT_PYTHON) + " " + VDITKIT_SOURCE_DIR + "/tests/reference/" + script +
                    " make-random " + w + " " + in + " --grad --forward " + out + " " + args);
    EXPECT_EQ(ran.exit_code, 0) << ran.output;
    if (ran.exit_code != 0) return;
    const Hdf5File weights(w, Hdf5File::Mode::Read);
    config_json = nlohmann::json::parse(weights.read_string("config"));
    for (const std::string& key : weights.datasets()) params[key] = weights.read(key);
    input = std::make_unique<Hdf5File>(in, Hdf5File::Mode::Read);
    output = std::make_unique<Hdf5File>(out, Hdf5File::Mode::Read);
  }
  bool ok() const { return output != nullptr; }
  // An input as a batch of one, or an undefined tensor when the file lacks it.
  Tensor batched(const std::string& name) const {
    if (!input->has(name)) return {};
    const Tensor t = input->read(name);
    Shape s = t.shape();
    s.insert(s.begin(), 1);
    return reshape(t, s);
  }
  double timestep() const { return input->read("timestep").item(); }

  nlohmann::json config_json;
  ParameterMap params;
  std::unique_ptr<Hdf5File> input, output;
};

// Every tensor's gradient against the reference's "grad/<key>", judged at no less than 0.1% of
// the largest gradient's scale (float32 cancellation noise on gradients that are zero in exact
// arithmetic). A tensor the output does not reach may have no gradient when the reference's is zero.
// The fields of a joint layout, for comparisons: video begin and count, text begin and count.
inline std::vector<int64_t> layout_fields(const JointLayout& j) {
  return {j.video_begin, j.video_count, j.text_begin, j.text_count};
}

inline void expect_gradients_match(const std::map<std::string, Tensor>& tensors, const Hdf5File& reference,
                                   double tolerance) {
  double largest = 0.0;
  for (const auto& [key, tensor] : tensors) largest = std::max(largest, max_abs(reference.read("grad/" + key)));
  for (const auto& [key, tensor] : tensors) {
    const Tensor expected = reference.read("grad/" + key);
    if (!tensor.grad().defined()) {
      EXPECT_EQ(max_abs(expected), 0.0) << key << " got no gradient";
      continue;
    }
    const Tensor got = reshape(tensor.grad(), expected.shape());
    const double scale = std::max(max_abs(expected), 1e-3 * largest);
    EXPECT_LE(max_abs_difference(got, expected) / scale, tolerance) << key;
  }
}

// Parameters of `specs` with std 0.3 and, with `temperature_width` > 0, a log temperature
// [temperature_width] (std 0.3) in each of `layers` blocks.
inline ParameterMap random_family_parameters(const std::vector<ParamSpec>& specs, int64_t layers,
                                             int64_t temperature_width, uint64_t seed) {
  Rng rng(seed);
  ParameterMap params;
  for (const ParamSpec& s : specs) params[s.name] = rng.normal_tensor(s.shape, 0.3f);
  for (int i = 0; temperature_width > 0 && i < layers; ++i)
    params[joint_temperature_key(i)] = rng.normal_tensor({temperature_width}, 0.3f);
  return params;
}

// Records what it sees of every attention call and answers as told: nothing (the model's own
// attention runs), the attention of the call's own q, k, v and options, or zeros.
class RecordingProbe : public AttentionProbe {
 public:
  enum class Answer { Nothing, SameAttention, Zeros };
  struct Seen {
    int block;
    AttentionKind kind;
    Shape q, k, v;
    JointLayout joint;
    Tensor key_mask;
    bool tempered;
  };
  explicit RecordingProbe(Answer answer) : answer_(answer) {}

  Tensor observe(const AttentionCall& call) override {
    calls.push_back({call.block, call.kind, call.q.shape(), call.k.shape(), call.v.shape(), call.joint,
                     call.options.key_mask, call.options.temperature.defined()});
    if (answer_ == Answer::SameAttention) return attention(call.q, call.k, call.v, call.options);
    if (answer_ == Answer::Zeros) return Tensor::zeros(call.q.shape());
    return {};
  }
  std::vector<Seen> calls;

 private:
  Answer answer_;
};

// A probe's answers reach the output: the call's own attention leaves it bit-identical, zeros
// change it. `run` is the model's staged forward with the probe.
inline void expect_probe_answers_replace_the_attention(const std::function<Tensor(AttentionProbe*)>& run) {
  const Tensor plain = run(nullptr);
  RecordingProbe same(RecordingProbe::Answer::SameAttention), zeros(RecordingProbe::Answer::Zeros);
  EXPECT_EQ(max_abs_difference(run(&same), plain), 0.0);
  EXPECT_GT(max_abs_difference(run(&zeros), plain), 1e-3 * max_abs(plain));
}

// The optional temperatures of a family with `layers` blocks of `heads` heads: the constructor
// and set_parameters take joint_temperature_key(i) as [heads] or [1] and refuse other shapes and
// blocks past the last, naming the key; set_parameters gives the model that construction gives.
// `params` has no temperatures; `run` is the model's forward.
template <class Model, class Config>
void expect_temperature_keys_checked(const Config& config, const ParameterMap& params, int64_t layers,
                                     int64_t heads, const std::function<Tensor(const Model&)>& run) {
  const std::string key = joint_temperature_key(static_cast<int>(layers) - 1);
  const Tensor per_head = Tensor::from_vector({heads}, std::vector<float>(heads, 0.4f));
  const Tensor per_block = Tensor::from_vector({1}, {-0.3f});
  auto with = [&](const std::string& k, const Tensor& t) {
    ParameterMap p = params;
    p[k] = t;
    return p;
  };
  EXPECT_EQ(error_of([&] { Model(config, with(key, per_head)); }), "");
  EXPECT_EQ(error_of([&] { Model(config, with(key, per_block)); }), "");
  const std::string bad_shape = error_of([&] { Model(config, with(key, Tensor::zeros({heads + 1}))); });
  EXPECT_NE(bad_shape.find("parameter '" + key + "' has shape [" + std::to_string(heads + 1) + "]"), std::string::npos)
      << bad_shape;
  const std::string past = joint_temperature_key(static_cast<int>(layers));
  const std::string unexpected = error_of([&] { Model(config, with(past, per_head)); });
  EXPECT_NE(unexpected.find("unexpected parameter '" + past + "'"), std::string::npos) << unexpected;

  Model model(config, params);
  const Tensor untempered = run(model);
  const std::string refused = error_of([&] { model.set_parameters({{key, Tensor::zeros({2, heads})}}); });
  EXPECT_NE(refused.find("'" + key + "' needs shape [" + std::to_string(heads) + "] or [1]"), std::string::npos)
      << refused;
  EXPECT_NE(error_of([&] { model.set_parameters({{past, per_head}}); }).find("unknown parameter '" + past + "'"),
            std::string::npos);
  // Named copies, not a structured binding: clang 14 cannot capture one.
  const std::string some_key = params.begin()->first;
  const Shape some_shape = params.begin()->second.shape();
  const std::string misshapen = error_of([&] { model.set_parameters({{some_key, Tensor::zeros({7, 7, 7})}}); });
  EXPECT_NE(misshapen.find("'" + some_key + "' needs shape " + to_string(some_shape)), std::string::npos)
      << misshapen;
  EXPECT_EQ(model.parameters().count(key), 0u) << "a refused set_parameters changed nothing";
  model.set_parameters({{key, per_block}});
  const Tensor tempered = run(model);
  EXPECT_EQ(max_abs_difference(tempered, run(Model(config, with(key, per_block)))), 0.0);
  EXPECT_GT(max_abs_difference(tempered, untempered), 0.0);
  model.set_parameters({{key, per_head}});  // a temperature may change from [1] to [heads]
  EXPECT_EQ(model.parameters().at(key).shape(), Shape{heads});
}

}  // namespace vdit::testing
