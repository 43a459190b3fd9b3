#include "optim/grad_clip.h"

#include <cmath>

#include "autograd/parallel.h"

namespace vdit {

double global_grad_norm(const std::vector<TrainableParameter>& params) {
  double sum_of_squares = 0.0;
  for (const TrainableParameter& p : params) {
    const Tensor grad = p.value.grad();
    if (!grad.defined()) continue;
    const float* g = grad.data();
    sum_of_squares += deterministic_sum(grad.numel(), [g](int64_t j) { return static_cast<double>(g[j]) * g[j]; });
  }
  return std::sqrt(sum_of_squares);
}

double clip_grad_norm(const std::vector<TrainableParameter>& params, double max_norm) {
  const double norm = global_grad_norm(params);
  if (max_norm <= 0 || !std::isfinite(norm) || norm <= max_norm) return norm;
  const auto scale = static_cast<float>(max_norm / norm);
  for (const TrainableParameter& p : params) {
    Tensor grad = p.value.grad();
    if (!grad.defined()) continue;
    float* g = grad.data();
    for_each_element(grad.numel(), [g, scale](int64_t j) { g[j] *= scale; });
  }
  return norm;
}

}  // namespace vdit
