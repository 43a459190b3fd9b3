#include "layers/family_params.h"

#include <set>

#include "autograd/check.h"

namespace vdit {

void ParamSpecList::linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
  tensor(prefix + ".weight", {out, in});
  if (bias) tensor(prefix + ".bias", {out});
}

void ParamSpecList::norm(const std::string& prefix, int64_t width) {
  tensor(prefix + ".weight", {width});
  tensor(prefix + ".bias", {width});
}

void ParamSpecList::tensor(const std::string& name, Shape shape) { specs_.push_back({name, std::move(shape), block_}); }

void check_parameters(const std::vector<ParamSpec>& specs, const ParameterMap& params, const std::string& model) {
  std::set<std::string> expected;
  for (const ParamSpec& spec : specs) {
    expected.insert(spec.name);
    auto it = params.find(spec.name);
    VDIT_CHECK(it != params.end(),
               "missing parameter '" << spec.name << "' (expected shape " << to_string(spec.shape) << ") of " << model);
    VDIT_CHECK(it->second.shape() == spec.shape, "parameter '" << spec.name << "' has shape "
                                                               << to_string(it->second.shape())
                                                               << " but the config needs " << to_string(spec.shape));
  }
  for (const auto& [key, tensor] : params)
    VDIT_CHECK(expected.count(key), "unexpected parameter '" << key << "' (not part of " << model << ")");
}

void move_parameters(ParameterMap& params, Device device) {
  for (auto& [key, value] : params) {
    const bool trainable = value.requires_grad();
    Tensor moved = (device.is_cuda() && !trainable ? value.to_bf16() : value).to(device);
    if (trainable && !moved.requires_grad()) moved.set_requires_grad(true);
    value = moved;
  }
}

void check_config_size(int64_t value, const char* name, int64_t max) {
  VDIT_CHECK(value > 0, "config: " << name << " must be positive, got " << value);
  VDIT_CHECK(value <= max, "config: " << name << " " << value << " is larger than " << max);
}

}  // namespace vdit
