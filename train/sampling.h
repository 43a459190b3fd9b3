#pragma once
// Generating with a flow-matching model (WAN21.md, "Sampling"): start from noise at sigma = 1
// and step sigma down to 0 with Euler, x += (sigma_next - sigma) v, on the shifted schedule,
// with classifier-free guidance v = v_uncond + g (v_cond - v_uncond), the unconditional input
// being an empty (all-padding) context.
#include <cstdint>
#include <functional>

#include "layers/model.h"

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
// `progress(step, steps)` after each step. A probe sees (and may replace) every attention call.
Tensor sample(const Model& model, const Shape& latent_shape, const Tensor& context, const SamplingOptions& options,
              const std::function<void(int64_t, int64_t)>& progress = {}, AttentionProbe* probe = nullptr);

// Whether sampling with `context` and `options` runs the model on a guidance pair.
bool is_guided(const Tensor& context, const SamplingOptions& options);

// The model's text input for `context` on `device`: [2, text_len, text_dim] (the context
// zero-padded, then the empty context) when guided, else [1, text_len, text_dim], and its mask
// [B, text_len]: the context's rows real, at least one (the empty context is one zero row), the
// padding not. Zero rows are exactly what Wan2.1 pads a shorter context with; Mochi-1 leaves
// the padding out; CogVideoX-2b takes exactly text_len rows, padding included.
struct SamplingText {
  Tensor context, mask;
};
SamplingText sampling_text(const ModelFacts& facts, const Tensor& context, bool guided, Device device);

// One model evaluation of every stream at step `step` (from 0): inputs[i] is stream i's latents
// as the model takes them ([2, C, F, H, W], the same latents twice, when guided: the
// conditional row first; [1, C, F, H, W] otherwise) and `timesteps` the matching timesteps; it
// returns each stream's model output, in the same shape.
using LockstepDenoiser =
    std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs, const std::vector<double>& timesteps, int64_t step)>;

// `streams` samples stepped together from the same noise (the seed's), each by the Euler and
// guidance rule above on what `denoise` returns; as `sample` for each, on the host.
std::vector<Tensor> sample_lockstep(const Model& model, const Shape& latent_shape, int64_t streams, bool guided,
                                    const SamplingOptions& options, const LockstepDenoiser& denoise,
                                    const std::function<void(int64_t, int64_t)>& progress = {});

// A pixel-space sample [3, F, H, W] (RGB in [-1, 1]) as the frames an MP4 gets: [0, 1], clamped.
Tensor sample_pixels(const Tensor& sample);

}  // namespace vdit
