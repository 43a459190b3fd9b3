#include "layers/parameter_map.h"

#include "autograd/check.h"

namespace vdit {

const Tensor& parameter(const ParameterMap& params, const std::string& key) {
  auto it = params.find(key);
  VDIT_CHECK(it != params.end(), "missing parameter '" << key << "'");
  return it->second;
}

Tensor optional_parameter(const ParameterMap& params, const std::string& key) {
  auto it = params.find(key);
  return it == params.end() ? Tensor{} : it->second;
}

}  // namespace vdit
