#include "data/synthetic_data.h"

#include <array>
#include <cmath>
#include <cstdio>

#include "autograd/check.h"
#include "autograd/random.h"

namespace vdit {

namespace {

constexpr int kCodeSize = 4;              // numbers per sample code, one wave per number
constexpr double kContextNoise = 0.05;    // so no two samples share a context exactly
constexpr double kTwoPi = 6.283185307179586;

// What every sample shares, drawn once from the seed: the waves, how channels mix them, and
// how the code is written into the context.
struct Basis {
  std::array<std::array<int, 3>, kCodeSize> cycles;  // wave k's whole cycles over (F, H, W)
  std::array<double, kCodeSize> phase;
  std::vector<double> mix;         // [channels, kCodeSize]
  std::vector<double> projection;  // [context_len, kCodeSize, text_dim]
};

Basis draw_basis(const SyntheticDataSpec& spec, Rng& rng) {
  Basis b;
  for (int k = 0; k < kCodeSize; ++k) {
    // At most two cycles keeps the patterns smooth at 8x8; at least one over H keeps every
    // wave from being a constant.
    b.cycles[k] = {static_cast<int>(rng.below(2)), 1 + static_cast<int>(rng.below(2)), static_cast<int>(rng.below(3))};
    b.phase[k] = kTwoPi * rng.uniform();
  }
  b.mix.resize(static_cast<size_t>(spec.channels * kCodeSize));
  for (double& m : b.mix) m = rng.normal();
  b.projection.resize(static_cast<size_t>(spec.context_len * kCodeSize * spec.text_dim));
  for (double& p : b.projection) p = rng.normal();
  return b;
}

// latents[c, f, h, w] = sum_k mix[c, k] z[k] sin(2 pi (cycles_k . (f/F, h/H, w/W)) + phase_k + z[k+1]) / sqrt(K):
// the code sets each wave's amplitude and shifts its phase; unit-variance mix and code keep the
// values O(1).
Tensor pattern_latents(const SyntheticDataSpec& spec, const Basis& b, const std::array<double, kCodeSize>& z) {
  Tensor latents = Tensor::empty({spec.channels, spec.frames, spec.height, spec.width});
  float* out = latents.data();
  const double norm = 1.0 / std::sqrt(static_cast<double>(kCodeSize));
  for (int64_t c = 0; c < spec.channels; ++c)
    for (int64_t f = 0; f < spec.frames; ++f)
      for (int64_t h = 0; h < spec.height; ++h)
        for (int64_t w = 0; w < spec.width; ++w) {
          const std::array<double, 3> position{static_cast<double>(f) / spec.frames,
                                               static_cast<double>(h) / spec.height,
                                               static_cast<double>(w) / spec.width};
          double value = 0.0;
          for (int k = 0; k < kCodeSize; ++k) {
            double turns = 0.0;
            for (int axis = 0; axis < 3; ++axis) turns += b.cycles[k][axis] * position[axis];
            const double amplitude = b.mix[c * kCodeSize + k] * z[k];
            value += amplitude * std::sin(kTwoPi * turns + b.phase[k] + z[(k + 1) % kCodeSize]);
          }
          *out++ = static_cast<float>(value * norm);
        }
  return latents;
}

// context[l, d] = sum_k z[k] projection[l, k, d] / sqrt(K) + noise: linear in the code, so the
// code is readable from any one token.
Tensor code_context(const SyntheticDataSpec& spec, const Basis& b, const std::array<double, kCodeSize>& z, Rng& rng) {
  Tensor context = Tensor::empty({spec.context_len, spec.text_dim});
  float* out = context.data();
  const double norm = 1.0 / std::sqrt(static_cast<double>(kCodeSize));
  for (int64_t l = 0; l < spec.context_len; ++l)
    for (int64_t d = 0; d < spec.text_dim; ++d) {
      double value = 0.0;
      for (int k = 0; k < kCodeSize; ++k) value += z[k] * b.projection[(l * kCodeSize + k) * spec.text_dim + d];
      *out++ = static_cast<float>(value * norm + kContextNoise * rng.normal());
    }
  return context;
}

std::string code_prompt(const std::array<double, kCodeSize>& z) {
  std::string prompt = "synthetic code";
  for (double v : z) {
    char number[16];
    std::snprintf(number, sizeof number, " %+.2f", v);
    prompt += number;
  }
  return prompt;
}

}  // namespace

std::vector<LatentSample> make_synthetic_samples(const SyntheticDataSpec& spec) {
  VDIT_CHECK(spec.samples >= 1 && spec.channels >= 1 && spec.frames >= 1 && spec.height >= 1 && spec.width >= 1 &&
                 spec.context_len >= 1 && spec.text_dim >= 1,
             "synthetic data: every size must be at least 1 (samples " << spec.samples << ", latents "
                 << to_string({spec.channels, spec.frames, spec.height, spec.width}) << ", context "
                 << to_string({spec.context_len, spec.text_dim}) << ")");
  Rng rng(spec.seed);
  const Basis basis = draw_basis(spec, rng);
  std::vector<LatentSample> samples;
  samples.reserve(static_cast<size_t>(spec.samples));
  for (int64_t i = 0; i < spec.samples; ++i) {
    std::array<double, kCodeSize> z;
    for (double& v : z) v = rng.normal();
    samples.push_back({pattern_latents(spec, basis, z), code_context(spec, basis, z, rng), code_prompt(z)});
  }
  return samples;
}

}  // namespace vdit
