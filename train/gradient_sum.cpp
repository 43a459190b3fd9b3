#include "train/gradient_sum.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "autograd/cuda_backend.h"

namespace vdit {

double GradientSum::operator()(const std::vector<TrainableParameter>& params) {
  if (group_.size() == 1) return 0.0;
  std::set<int> gpus;
  for (const TrainableParameter& p : params)
    if (p.value.is_cuda()) gpus.insert(p.value.device().index);
  for (int gpu : gpus) cuda_backend().synchronize(gpu);
  const auto start = std::chrono::steady_clock::now();
  std::vector<double> has_gradient(params.size());
  for (size_t i = 0; i < params.size(); ++i) has_gradient[i] = params[i].value.grad().defined() ? 1.0 : 0.0;
  group_.sum(has_gradient.data(), static_cast<int64_t>(has_gradient.size()));

  // Parameters by device (the CPU as -1), each group in parameter order: one flat buffer each.
  std::map<int, std::vector<const TrainableParameter*>> by_device;
  for (size_t i = 0; i < params.size(); ++i)
    if (has_gradient[i] > 0) {
      const Device device = params[i].value.device();
      by_device[device.is_cuda() ? device.index : -1].push_back(&params[i]);
    }
  for (const auto& [device_index, group] : by_device) {
    int64_t total = 0;
    for (const TrainableParameter* p : group) total += p->value.numel();
    if (device_index < 0) {
      host_.resize(static_cast<size_t>(total));
      float* flat = host_.data();
      for (const TrainableParameter* p : group) {
        const Tensor grad = p->value.grad();
        if (grad.defined())
          std::copy_n(grad.data(), grad.numel(), flat);
        else
          std::fill_n(flat, p->value.numel(), 0.0f);
        flat += p->value.numel();
      }
      group_.sum(host_.data(), total);
      flat = host_.data();
      for (const TrainableParameter* p : group) {
        std::copy_n(flat, p->value.numel(), p->value.grad_ref()->buffer());  // allocates one where none was
        flat += p->value.numel();
      }
      continue;
    }
    const Device device = Device::cuda(device_index);
    const CudaBackend& cuda = cuda_backend();
    const Tensor flat = Tensor::empty({total}, DType::F32, device);
    auto* base = static_cast<float*>(flat.storage());
    int64_t offset = 0;
    for (const TrainableParameter* p : group) {
      const Tensor grad = p->value.grad();
      const int64_t n = p->value.numel();
      if (grad.defined())
        cuda.copy(base + offset, device, grad.storage(), device, n * sizeof(float));
      else
        cuda.fill(base + offset, DType::F32, n, 0.0f, device_index);
      offset += n;
    }
    group_.sum_on_device(base, total, device_index);
    offset = 0;
    for (const TrainableParameter* p : group) {
      const int64_t n = p->value.numel();
      cuda.copy(p->value.grad_ref()->buffer(), device, base + offset, device, n * sizeof(float));
      offset += n;
    }
  }
  for (int gpu : gpus) cuda_backend().synchronize(gpu);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace vdit
