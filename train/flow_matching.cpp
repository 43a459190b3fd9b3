#include "train/flow_matching.h"

#include <cmath>

#include "autograd/check.h"
#include "autograd/ops.h"

namespace vdit {

SigmaSampling parse_sigma_sampling(const std::string& name) {
  if (name == "uniform") return SigmaSampling::Uniform;
  if (name == "logit-normal") return SigmaSampling::LogitNormal;
  VDIT_FAIL("unknown timestep sampling '" << name << "' (uniform, logit-normal)");
}

LossWeighting parse_loss_weighting(const std::string& name) {
  if (name == "none") return LossWeighting::None;
  if (name == "cosmap") return LossWeighting::Cosmap;
  if (name == "sigma-sqrt") return LossWeighting::SigmaSqrt;
  VDIT_FAIL("unknown loss weighting '" << name << "' (none, cosmap, sigma-sqrt)");
}

std::string to_string(SigmaSampling sampling) {
  return sampling == SigmaSampling::Uniform ? "uniform" : "logit-normal";
}

std::string to_string(LossWeighting weighting) {
  switch (weighting) {
    case LossWeighting::None: return "none";
    case LossWeighting::Cosmap: return "cosmap";
    case LossWeighting::SigmaSqrt: return "sigma-sqrt";
  }
  return "none";
}

double shift_sigma(double sigma, double shift) { return shift * sigma / (1.0 + (shift - 1.0) * sigma); }

double sample_sigma(const FlowMatchingConfig& config, Rng& rng) {
  double sigma = config.sampling == SigmaSampling::Uniform
                     ? rng.uniform()
                     : 1.0 / (1.0 + std::exp(-(config.logit_mean + config.logit_std * rng.normal())));
  return shift_sigma(sigma, config.shift);
}

double loss_weight(LossWeighting weighting, double sigma) {
  switch (weighting) {
    case LossWeighting::None: return 1.0;
    case LossWeighting::Cosmap: return 2.0 / (M_PI * (1.0 - 2.0 * sigma + 2.0 * sigma * sigma));
    case LossWeighting::SigmaSqrt: return 1.0 / std::max(sigma * sigma, 1e-4);  // bounded near 0
  }
  return 1.0;
}

NoisyBatch make_noisy_batch_with(const Tensor& x0_in, const std::vector<double>& sigmas, LossWeighting weighting,
                                 const Tensor& noise) {
  const Tensor x0 = x0_in.to_f32();
  VDIT_CHECK(x0.ndim() == 5, "flow matching takes latents [B, C, F, H, W], got " << to_string(x0.shape()));
  const int64_t batch = x0.size(0), per_sample = x0.numel() / batch;
  VDIT_CHECK(static_cast<int64_t>(sigmas.size()) == batch, sigmas.size() << " sigmas for a batch of " << batch);
  VDIT_CHECK(noise.shape() == x0.shape(), "noise " << to_string(noise.shape()) << " for latents " << to_string(x0.shape()));
  NoisyBatch out;
  out.sigmas = sigmas;
  out.x_sigma = Tensor::empty(x0.shape());
  out.target = Tensor::empty(x0.shape());
  out.timesteps = Tensor::empty({batch});
  out.weights = Tensor::empty({batch});
  const float *px = x0.data(), *pn = noise.data();
  float *pxs = out.x_sigma.data(), *pt = out.target.data();
  for (int64_t b = 0; b < batch; ++b) {
    const float s = static_cast<float>(sigmas[b]);
    for (int64_t i = b * per_sample; i < (b + 1) * per_sample; ++i) {
      pxs[i] = (1.0f - s) * px[i] + s * pn[i];
      pt[i] = pn[i] - px[i];
    }
    out.timesteps.data()[b] = static_cast<float>(1000.0 * sigmas[b]);
    out.weights.data()[b] = static_cast<float>(loss_weight(weighting, sigmas[b]));
    out.unweighted = out.unweighted && out.weights.data()[b] == 1.0f;
  }
  return out;
}

NoisyBatch NoisyBatch::to(Device device) const {
  NoisyBatch out = *this;
  for (Tensor* t : {&out.x_sigma, &out.timesteps, &out.target, &out.weights}) *t = t->to(device);
  return out;
}

NoisyBatch make_noisy_batch_at(const Tensor& x0, const std::vector<double>& sigmas, LossWeighting weighting,
                               Rng& noise_rng) {
  return make_noisy_batch_with(x0, sigmas, weighting, noise_rng.normal_tensor(x0.shape()));
}

NoisyBatch make_noisy_batch(const Tensor& x0, const FlowMatchingConfig& config, Rng& sigma_rng,
                            Rng& noise_rng) {
  std::vector<double> sigmas(x0.size(0));
  for (double& s : sigmas) s = sample_sigma(config, sigma_rng);
  return make_noisy_batch_at(x0, sigmas, config.weighting, noise_rng);
}

Tensor flow_matching_loss(const Tensor& velocity, const NoisyBatch& batch) {
  VDIT_CHECK(velocity.shape() == batch.target.shape(),
             "velocity " << to_string(velocity.shape()) << " does not match the target "
                         << to_string(batch.target.shape()));
  if (batch.unweighted) return mse_loss(velocity, batch.target);  // equal sizes: the plain mean
  const int64_t b = velocity.size(0);
  Tensor per_sample = mean(square(sub(velocity, batch.target)), {1, 2, 3, 4});  // [B]
  return scale(sum_all(mul(per_sample, batch.weights)), 1.0f / static_cast<float>(b));
}

}  // namespace vdit
