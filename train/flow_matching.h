#pragma once
// The flow-matching objective as Wan trains (WAN21.md, "Flow matching"): a noise level sigma,
// shifted; x_sigma = (1 - sigma) x0 + sigma noise; the model, called at t = 1000 sigma,
// predicts the velocity noise - x0; the loss is the (optionally weighted) mean squared error.
#include <string>

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace vdit {

enum class SigmaSampling { Uniform, LogitNormal };
// Per-sample loss weights as a function of sigma (SD3 and diffusers name the same schemes):
// none: 1; cosmap: 2 / (pi (1 - 2 sigma + 2 sigma^2)); sigma_sqrt: sigma^-2.
enum class LossWeighting { None, Cosmap, SigmaSqrt };

struct FlowMatchingConfig {
  SigmaSampling sampling = SigmaSampling::Uniform;
  double logit_mean = 0.0;  // logit-normal: sigma = sigmoid(N(mean, std))
  double logit_std = 1.0;
  double shift = 5.0;
  LossWeighting weighting = LossWeighting::None;
};

SigmaSampling parse_sigma_sampling(const std::string& name);  // "uniform" | "logit-normal"
LossWeighting parse_loss_weighting(const std::string& name);  // "none" | "cosmap" | "sigma-sqrt"
std::string to_string(SigmaSampling sampling);
std::string to_string(LossWeighting weighting);

// sigma' = shift sigma / (1 + (shift - 1) sigma)
double shift_sigma(double sigma, double shift);
double sample_sigma(const FlowMatchingConfig& config, Rng& rng);
double loss_weight(LossWeighting weighting, double sigma);

struct NoisyBatch {
  Tensor x_sigma;    // [B, C, F, H, W]
  Tensor timesteps;  // [B], 1000 sigma
  Tensor target;     // [B, C, F, H, W], noise - x0
  Tensor weights;    // [B], loss weight of each sample
  std::vector<double> sigmas;
  bool unweighted = true;  // every weight is 1: the loss is the plain mean

  // The tensors on `device` (this batch itself on its own device).
  NoisyBatch to(Device device) const;
};

// One sigma per sample from `sigma_rng`, the noise from `noise_rng`: two streams, so that a
// change to one (say, the noise shape) leaves the other's draws unchanged.
NoisyBatch make_noisy_batch(const Tensor& x0, const FlowMatchingConfig& config, Rng& sigma_rng,
                            Rng& noise_rng);
// Sigmas chosen by the caller (probe sets, evaluation at fixed noise levels).
NoisyBatch make_noisy_batch_at(const Tensor& x0, const std::vector<double>& sigmas,
                               LossWeighting weighting, Rng& noise_rng);
// Noise given too (of x0's shape): a data-parallel rank's share of a batch whose noise every
// rank draws (train/trainer.cpp).
NoisyBatch make_noisy_batch_with(const Tensor& x0, const std::vector<double>& sigmas, LossWeighting weighting,
                                 const Tensor& noise);

// mean over samples of weight_b * mean((velocity_b - target_b)^2).
Tensor flow_matching_loss(const Tensor& velocity, const NoisyBatch& batch);

}  // namespace vdit
