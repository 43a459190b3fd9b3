#include "layers/linear.h"

namespace vdit {

Linear linear_from(const ParameterMap& params, const std::string& prefix) {
  return {parameter(params, prefix + ".weight"), parameter(params, prefix + ".bias")};
}

}  // namespace vdit
