#pragma once
// A model's parameters by their original Wan key. Tensors are handles: the map may hold
// borrowed views of a memory-mapped checkpoint, and layers hold further handles to the same
// storage.
#include <map>
#include <string>

#include "autograd/tensor.h"

namespace vdit {

using ParameterMap = std::map<std::string, Tensor>;

// The tensor stored under `key`; vdit::Error naming the key when it is absent.
const Tensor& parameter(const ParameterMap& params, const std::string& key);
// The tensor under `key`, or an undefined tensor when the map has none (optional parameters).
Tensor optional_parameter(const ParameterMap& params, const std::string& key);

}  // namespace vdit
