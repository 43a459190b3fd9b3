#pragma once
// Generating with a flow-matching model (WAN21.md, "Sampling"): start from noise at sigma = 1
// and step sigma down to 0 with Euler, x += (sigma_next - sigma) v, on the shifted schedule,
// with classifier-free guidance v = v_uncond + g (v_cond - v_uncond), the unconditional input
// being an empty (all-padding) context.
#include <cstdint>
#include <functional>

#include "layers/vdit.h"

namespace vdit {

struct SamplingOptions {
  int64_t steps = 30;
  double guidance = 5.0;  // 1: no guidance (one model call per step)
  double shift = 5.0;
  uint64_t seed = 0;
};

// latent_shape [C, F, H, W]; context [L, text_dim] on the host, or undefined for an
// unconditional sample. Runs on the model's device: the noise is drawn on the host (the same on
// every device), the sample is carried in float32 and returned on the host, [C, F, H, W].
// `progress(step, steps)` after each step.
Tensor sample(const VDiT& model, const Shape& latent_shape, const Tensor& context, const SamplingOptions& options,
              const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace vdit
