#pragma once
// Numeric gradient check: analytic gradients from the tape against central finite
// differences. The scalar probed is L = sum_i w_i out_i with fixed random weights w, summed in
// double so that float32 rounding of the outputs stays below the difference quotient.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

struct GradCheckResult {
  double max_abs_error = 0.0;  // over every checked element
  double max_abs_grad = 0.0;   // largest numeric gradient, the scale of the error
  std::string worst;           // "input 1, element 17: analytic .. numeric .."
  double relative() const { return max_abs_error / std::max(max_abs_grad, 1e-12); }
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks every input that requires a gradient. Inputs are perturbed in place and restored.
GradCheckResult check_gradients(const TensorFn& f, const std::vector<Tensor>& inputs,
                                double eps = 1e-2, uint64_t seed = 1);

}  // namespace vdit
