#pragma once
// What the diffusers-layout families (Mochi-1, CogVideoX-2b) share about their parameters: a
// spec list built layer by layer, and the check that a map holds exactly those parameters.
#include <string>
#include <vector>

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

// vdit::Error naming the first missing, misshapen or unexpected key; `model` names the family
// and size in the error ("a Mochi-1 model with 48 blocks").
void check_parameters(const std::vector<ParamSpec>& specs, const ParameterMap& params, const std::string& model);

// Moves every parameter to `device`: on a GPU frozen parameters are stored as bf16, trainable
// ones stay float32 and keep requiring a gradient (the README's precision table; VDiT::to).
void move_parameters(ParameterMap& params, Device device);

// Config bounds shared with Wan's (VDiTConfig::kMaxSize): `name` positive and at most `max`.
void check_config_size(int64_t value, const char* name, int64_t max = VDiTConfig::kMaxSize);

}  // namespace vdit
