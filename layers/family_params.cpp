#include "layers/family_params.h"

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

std::string joint_temperature_key(int block) {
  return "transformer_blocks." + std::to_string(block) + ".attn1.log_temperature";
}

OptionalTemperatures joint_temperatures(int64_t num_layers, int64_t num_heads) {
  OptionalTemperatures t{{}, num_heads};
  for (int i = 0; i < num_layers; ++i) t.keys.insert(joint_temperature_key(i));
  return t;
}

void check_parameters(const std::vector<ParamSpec>& specs, const ParameterMap& params, const std::string& model,
                      const OptionalTemperatures& temperatures) {
  std::set<std::string> expected;
  for (const ParamSpec& spec : specs) {
    expected.insert(spec.name);
    auto it = params.find(spec.name);
    VDIT_CHECK(it != params.end(),
               "missing parameter '" << spec.name << "' (expected shape " << to_string(spec.shape) << ")");
    VDIT_CHECK(it->second.shape() == spec.shape, "parameter '" << spec.name << "' has shape "
                                                               << to_string(it->second.shape())
                                                               << " but the config needs " << to_string(spec.shape));
  }
  for (const auto& [key, tensor] : params) {
    if (expected.count(key)) continue;
    VDIT_CHECK(temperatures.contains(key), "unexpected parameter '" << key << "' (not part of " << model << ")");
    VDIT_CHECK(temperatures.shape_ok(tensor.shape()),
               "parameter '" << key << "' has shape " << to_string(tensor.shape()) << " but temperatures are ["
                             << temperatures.num_heads << "] (per head) or [1] (per block)");
  }
}

void replace_parameters(ParameterMap& params, const ParameterMap& values, const OptionalTemperatures& temperatures) {
  for (const auto& [key, value] : values) {
    auto it = params.find(key);
    if (it == params.end() || temperatures.contains(key)) {
      VDIT_CHECK(temperatures.contains(key), "set_parameter: unknown parameter '" << key << "'");
      VDIT_CHECK(temperatures.shape_ok(value.shape()), "set_parameter: '" << key << "' needs shape ["
                                                                          << temperatures.num_heads << "] or [1], got "
                                                                          << to_string(value.shape()));
    } else {
      VDIT_CHECK(value.shape() == it->second.shape(), "set_parameter: '" << key << "' needs shape "
                                                                          << to_string(it->second.shape()) << ", got "
                                                                          << to_string(value.shape()));
    }
  }
  for (const auto& [key, value] : values) params[key] = value;
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
