#pragma once
// What the families share about their parameters: a spec list built layer by layer (the
// diffusers-layout families, Mochi-1 and CogVideoX-2b), the check that a map holds exactly those
// parameters plus optional temperatures, and their replacement (all three families).
#include <set>
#include <string>
#include <vector>

#include "autograd/check.h"
#include "layers/model.h"
#include "layers/parameter_map.h"
#include "layers/vdit_config.h"

namespace vdit {

// Appends the specs of one layer in the diffusers naming.
class ParamSpecList {
 public:
  // `prefix`.weight [out, in] and, with a bias, `prefix`.bias [out].
  void linear(const std::string& prefix, int64_t out, int64_t in, bool bias = true);
  // `prefix`.weight and `prefix`.bias, both [width] (an affine LayerNorm).
  void norm(const std::string& prefix, int64_t width);
  void tensor(const std::string& name, Shape shape);
  // Specs added from now on belong to block `index` (-1: outside the blocks).
  void set_block(int index) { block_ = index; }
  std::vector<ParamSpec> take() { return std::move(specs_); }

 private:
  std::vector<ParamSpec> specs_;
  int block_ = -1;
};

// The optional parameters a model may hold besides its specs: attention log temperatures, each
// [num_heads] (one tau per head) or [1] (one for the attention). Not part of the released models;
// absent means tau = 1.
struct OptionalTemperatures {
  std::set<std::string> keys;
  int64_t num_heads = 1;
  bool contains(const std::string& key) const { return keys.count(key) > 0; }
  bool shape_ok(const Shape& shape) const { return shape == Shape{num_heads} || shape == Shape{1}; }
};

// "transformer_blocks.<block>.attn1.log_temperature": the temperature of Mochi-1's and
// CogVideoX-2b's joint attention in block `block`.
std::string joint_temperature_key(int block);
// Those of every block of a model with `num_layers` blocks.
OptionalTemperatures joint_temperatures(int64_t num_layers, int64_t num_heads);

// vdit::Error naming the first missing, misshapen or unexpected key; `model` names the family
// and size in the error ("a Mochi-1 model with 48 blocks").
void check_parameters(const std::vector<ParamSpec>& specs, const ParameterMap& params, const std::string& model,
                      const OptionalTemperatures& temperatures);

// Replaces entries of `params` by `values`: a parameter keeps its shape, a temperature of
// `temperatures` may be added or replaced ([num_heads] or [1]). vdit::Error naming the first key
// that fits neither, before anything changes.
void replace_parameters(ParameterMap& params, const ParameterMap& values, const OptionalTemperatures& temperatures);

// Moves every parameter to `device`: on a GPU frozen parameters are stored as bf16, trainable
// ones stay float32 and keep requiring a gradient (the README's precision table; VDiT::to).
void move_parameters(ParameterMap& params, Device device);

// A staged forward's state as the family `S` made it; an error for another family's.
template <class S>
const S& family_stage(const Model::Stage& stage, const char* family) {
  const auto* own = dynamic_cast<const S*>(&stage);
  VDIT_CHECK(own, "a " << family << " block was given another family's stage");
  return *own;
}

// Config bounds shared with Wan's (VDiTConfig::kMaxSize): `name` positive and at most `max`.
void check_config_size(int64_t value, const char* name, int64_t max = VDiTConfig::kMaxSize);

}  // namespace vdit
