#pragma once
// What the Mochi-1 and CogVideoX-2b parity tests share: running their float64 reference
// (tests/reference/<family>_reference.py) on a tiny random model, reading its weights, inputs and
// outputs, and judging every gradient the way test_wan_parity.cpp does.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "autograd/ops.h"
#include "data/hdf5_file.h"
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

}  // namespace vdit::testing
