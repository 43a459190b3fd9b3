#include "optim/sgd.h"

#include <cmath>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"

namespace vdit {
namespace {

std::vector<std::string> sgd_moments(const SgdOptions& options) {
  if (options.momentum == 0) return {};
  return {"momentum"};
}

}  // namespace

Sgd::Sgd(std::vector<TrainableParameter> params, SgdOptions options)
    : Optimizer("sgd", std::move(params), sgd_moments(options)), options_(options) {
  VDIT_CHECK(options.momentum >= 0, "sgd: momentum " << options.momentum << " must not be negative");
  VDIT_CHECK(options.weight_decay >= 0, "sgd: weight decay " << options.weight_decay << " must not be negative");
  VDIT_CHECK(!options.nesterov || options.momentum > 0, "sgd: nesterov needs a positive momentum");
}

void Sgd::step(double lr) {
  run_step(lr, [&](size_t i, float* value, const float* grad) {
    // Scalars are rounded to float32 and each torch add_ is a fused multiply-add, as in torch's
    // CPU kernels (vec::fmadd); the fma with 1 keeps the rounding of momentum * b apart.
    const Tensor& p = parameters()[i].value;
    const SgdScalars s{.decay = decays(parameters()[i]) ? static_cast<float>(options_.weight_decay) : 0.0f,
                       .momentum = static_cast<float>(options_.momentum),
                       .neg_lr = static_cast<float>(-lr),
                       .nesterov = options_.nesterov};
    float* buffer = s.momentum != 0 ? moment(0, i) : nullptr;
    if (p.is_cuda()) return cuda_backend().sgd_update(value, grad, buffer, p.numel(), s, p.device().index);
    for_each_element(p.numel(), [&](int64_t j) {
      float d = std::fma(value[j], s.decay, grad[j]);
      if (buffer) {
        buffer[j] = std::fma(d, 1.0f, buffer[j] * s.momentum);
        d = s.nesterov ? std::fma(buffer[j], s.momentum, d) : buffer[j];
      }
      value[j] = std::fma(d, s.neg_lr, value[j]);
    });
  });
}

}  // namespace vdit
