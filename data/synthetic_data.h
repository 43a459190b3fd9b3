#pragma once
// Synthetic, learnable data for tests and the demo. Each sample draws a small random code;
// its latents are smooth patterns the code determines (sums of low-frequency sinusoids over
// frames, height and width whose amplitudes and phases come from the code, values O(1)), and
// its context encodes the same code (fixed random projections plus a little noise). A
// text-conditioned model can therefore learn to denoise them, and an unconditioned one cannot
// do as well. Deterministic in the seed.
#include <cstdint>
#include <vector>

#include "data/latent_dataset.h"

namespace vdit {

struct SyntheticDataSpec {
  int64_t samples = 32, channels = 16, frames = 1, height = 8, width = 8, context_len = 8, text_dim = 64;
  uint64_t seed = 0;
};

std::vector<LatentSample> make_synthetic_samples(const SyntheticDataSpec& spec);

}  // namespace vdit
