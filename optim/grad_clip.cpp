#include "optim/grad_clip.h"

#include <cmath>
#include <map>

#include "autograd/cuda_backend.h"
#include "autograd/parallel.h"

namespace vdit {

double global_grad_norm(const std::vector<TrainableParameter>& params) {
  // CPU gradients sum here; CUDA ones on their device (one read-back per device), each group in
  // parameter order, the groups in device order: a fixed order either way.
  double sum_of_squares = 0.0;
  std::map<int, std::pair<std::vector<const float*>, std::vector<int64_t>>> on_device;
  for (const TrainableParameter& p : params) {
    const Tensor grad = p.value.grad();
    if (!grad.defined()) continue;
    if (grad.is_cuda()) {
      auto& [buffers, sizes] = on_device[grad.device().index];
      buffers.push_back(static_cast<const float*>(grad.storage()));
      sizes.push_back(grad.numel());
      continue;
    }
    const float* g = grad.data();
    sum_of_squares += deterministic_sum(grad.numel(), [g](int64_t j) { return static_cast<double>(g[j]) * g[j]; });
  }
  for (const auto& [device, group] : on_device)
    sum_of_squares += cuda_backend().sum_of_squares(group.first, group.second, device);
  return std::sqrt(sum_of_squares);
}

double clip_grad_norm(const std::vector<TrainableParameter>& params, double max_norm) {
  const double norm = global_grad_norm(params);
  if (max_norm <= 0 || !std::isfinite(norm) || norm <= max_norm) return norm;
  const auto scale = static_cast<float>(max_norm / norm);
  for (const TrainableParameter& p : params) {
    Tensor grad = p.value.grad();
    if (!grad.defined()) continue;
    if (grad.is_cuda()) {
      cuda_backend().scale_in_place(static_cast<float*>(grad.storage()), grad.numel(), scale, grad.device().index);
      continue;
    }
    float* g = grad.data();
    for_each_element(grad.numel(), [g, scale](int64_t j) { g[j] *= scale; });
  }
  return norm;
}

}  // namespace vdit
