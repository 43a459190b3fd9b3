#include "layers/init.h"

#include <cmath>

#include "autograd/check.h"

namespace vdit {

namespace {

Tensor xavier_uniform(const Shape& shape, Rng& rng) {
  const int64_t fan_out = shape[0], fan_in = numel(shape) / shape[0];  // conv weights flattened
  const double bound = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  Tensor t = Tensor::empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  return t;
}

}  // namespace

Tensor init_wan_parameter(const std::string& key, const Shape& shape, Rng& rng) {
  if (key.ends_with("modulation")) return rng.normal_tensor(shape, 1.0f / std::sqrt(static_cast<float>(shape.back())));
  if (key.ends_with(".log_temperature")) return Tensor::zeros(shape);  // tau = 1: the model is unchanged
  if (key.ends_with("norm_q.weight") || key.ends_with("norm_k.weight") ||
      key.ends_with("norm3.weight"))
    return Tensor::full(shape, 1.0f);
  if (key.ends_with(".bias") || key == "head.head.weight") return Tensor::zeros(shape);
  VDIT_CHECK(key.ends_with(".weight"), "no initialisation rule for parameter '" << key << "'");
  if (key.starts_with("text_embedding.") || key.starts_with("time_embedding.")) return rng.normal_tensor(shape, 0.02f);
  return xavier_uniform(shape, rng);
}

Tensor init_diffusers_parameter(const std::string& key, const Shape& shape, Rng& rng) {
  if (key.ends_with(".log_temperature") || key.ends_with(".bias")) return Tensor::zeros(shape);
  if (key == "pos_frequencies") {
    Tensor t = Tensor::empty(shape);
    const int64_t half = shape.back();
    for (int64_t i = 0; i < t.numel(); ++i)
      t.data()[i] = static_cast<float>(std::pow(10000.0, -static_cast<double>(i % half) / static_cast<double>(half)));
    return t;
  }
  VDIT_CHECK(key.ends_with(".weight"), "no initialisation rule for parameter '" << key << "'");
  return shape.size() == 1 ? Tensor::full(shape, 1.0f) : xavier_uniform(shape, rng);
}

ParameterMap init_wan_parameters(const VDiTConfig& config, uint64_t seed) {
  config.validate();
  Rng rng(seed);
  ParameterMap params;
  for (const ParamSpec& spec : wan_parameter_specs(config)) params[spec.name] = init_wan_parameter(spec.name, spec.shape, rng);
  return params;
}

}  // namespace vdit
