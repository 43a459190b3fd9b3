#pragma once
// Inputs read from files must hold numbers: a NaN or infinity in latents or context would
// flow silently through the model into every output. The error names where the value came
// from (file and object), the value and its index.
#include <cstdint>
#include <string>

#include "autograd/tensor.h"

namespace vdit {

// The flat index of the first NaN or infinity in `t`, or -1 when all values are finite.
int64_t first_non_finite(const Tensor& t);

// Throws a vdit::Error "WHERE holds nan at index [i, j, ...]" unless every value is finite.
void check_finite(const Tensor& t, const std::string& where);

}  // namespace vdit
