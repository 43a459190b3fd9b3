#include "train/temperature.h"

#include <cmath>

#include "autograd/check.h"
#include "train/layer_selection.h"

namespace vdit {

TemperatureGranularity parse_temperature_granularity(const std::string& name) {
  if (name == "head") return TemperatureGranularity::Head;
  if (name == "block") return TemperatureGranularity::Block;
  VDIT_FAIL("unknown --granularity '" << name << "' (known: head, block)");
}

std::string to_string(TemperatureGranularity granularity) {
  return granularity == TemperatureGranularity::Head ? "head" : "block";
}

ParameterMap unit_temperatures(const Model& model, const std::vector<int>& blocks, TemperatureGranularity granularity,
                               bool cross_attn) {
  const ModelFacts facts = model.facts();
  VDIT_CHECK(!cross_attn || !model.temperature_key(0, AttentionKind::Cross).empty(),
             "a " << facts.family << " model has no cross-attention whose temperature could be tuned");
  const Shape shape = {granularity == TemperatureGranularity::Head ? facts.num_heads : 1};
  ParameterMap params;
  for (int b : blocks) {
    params[model.temperature_key(b, main_attention(model.facts()))] = Tensor::zeros(shape);
    if (cross_attn) params[model.temperature_key(b, AttentionKind::Cross)] = Tensor::zeros(shape);
  }
  return params;
}

ParameterMap fixed_temperatures(const std::string& spec, const Model& model, const std::string& flag) {
  ParameterMap params;
  size_t begin = 0;
  while (begin < spec.size()) {
    size_t end = spec.find(';', begin);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(begin, end - begin);
    const size_t colon = item.rfind(':');
    VDIT_CHECK(colon != std::string::npos, flag << ": '" << item << "' is not BLOCKS:VALUE (e.g. 0-2:1.5)");
    double tau = 0.0;
    try {
      size_t used = 0;
      tau = std::stod(item.substr(colon + 1), &used);
      VDIT_CHECK(used == item.size() - colon - 1, flag << ": '" << item.substr(colon + 1) << "' is not a number");
    } catch (const std::logic_error&) {
      VDIT_FAIL(flag << ": '" << item.substr(colon + 1) << "' is not a number");
    }
    VDIT_CHECK(tau > 0.0 && std::isfinite(tau), flag << ": temperature " << tau << " must be positive");
    for (int b : parse_block_list(item.substr(0, colon), model, flag))
      params[model.temperature_key(b, main_attention(model.facts()))] = Tensor::full({1}, static_cast<float>(std::log(tau)));
    begin = end + 1;
  }
  VDIT_CHECK(!params.empty(), flag << ": no temperature given");
  return params;
}

}  // namespace vdit
