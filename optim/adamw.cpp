#include "optim/adamw.h"

#include <cmath>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"

namespace vdit {
namespace {

enum Moment : size_t { kExpAvg, kExpAvgSq };

// x + y rounded on its own, as a separate torch kernel computes it: GCC's default
// -ffp-contract=fast would otherwise fuse a product feeding the sum into one rounding.
float add_unfused(float x, float y) { return std::fma(x, 1.0f, y); }

}  // namespace

AdamW::AdamW(std::vector<TrainableParameter> params, AdamWOptions options)
    : Optimizer("adamw", std::move(params), {"exp_avg", "exp_avg_sq"}), options_(options) {
  VDIT_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
             "adamw: betas (" << options.beta1 << ", " << options.beta2 << ") must lie in [0, 1)");
  VDIT_CHECK(options.eps > 0, "adamw: eps " << options.eps << " must be positive");
  VDIT_CHECK(options.weight_decay >= 0, "adamw: weight decay " << options.weight_decay << " must not be negative");
}

void AdamW::step(double lr) {
  run_step(lr, [&](size_t i, float* value, const float* grad) {
    const TrainableParameter& p = parameters()[i];
    const auto t = static_cast<double>(steps());
    // Scalars are rounded to float32 where torch's kernels round them. torch's CPU add_ is a
    // fused multiply-add (vec::fmadd) and its build fuses addcmul_'s v * beta2 + c * g * g as
    // fma(c * g, g, v * beta2): the explicit fmas reproduce both.
    const AdamWScalars s{
        .decay = decays(p) ? static_cast<float>(1.0 - lr * options_.weight_decay) : 1.0f,
        .beta1 = static_cast<float>(options_.beta1),
        .beta2 = static_cast<float>(options_.beta2),
        .one_minus_beta1 = static_cast<float>(1.0 - options_.beta1),
        .one_minus_beta2 = static_cast<float>(1.0 - options_.beta2),
        .bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t))),
        .neg_step_size = static_cast<float>(-lr / (1.0 - std::pow(options_.beta1, t))),
        .eps = static_cast<float>(options_.eps)};
    float* exp_avg = moment(kExpAvg, i);
    float* exp_avg_sq = moment(kExpAvgSq, i);
    if (p.value.is_cuda())
      return cuda_backend().adamw_update(value, grad, exp_avg, exp_avg_sq, p.value.numel(), s, p.value.device().index);
    for_each_element(p.value.numel(), [&](int64_t j) {
      const float g = grad[j];
      const float decayed = value[j] * s.decay;
      exp_avg[j] = std::fma(g, s.one_minus_beta1, exp_avg[j] * s.beta1);
      exp_avg_sq[j] = std::fma(s.one_minus_beta2 * g, g, exp_avg_sq[j] * s.beta2);
      const float denom = std::sqrt(exp_avg_sq[j]) / s.bias_correction2_sqrt + s.eps;
      value[j] = add_unfused(s.neg_step_size * exp_avg[j] / denom, decayed);
    });
  });
}

}  // namespace vdit
