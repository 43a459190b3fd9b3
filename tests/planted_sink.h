#pragma once
// A small model with a planted attention sink, and data that trigger it (tests of diagnose and
// study sparsity).
#include "data/latent_dataset.h"
#include "layers/init.h"
#include "layers/parameter_map.h"
#include "layers/rope3d.h"
#include "tests/fixtures.h"

namespace vdit::testing {

inline constexpr int64_t kSinkToken = 5;  // (frame 0, row 1, column 1) of a 4 x 4 token grid

inline VDiTConfig small_config() { return small_config({.dim = 24, .ffn_dim = 32, .num_heads = 2, .num_layers = 3}); }

// Block 0, head 0 gets a sink at kSinkToken. The patch embedding copies latent channel 0 to
// width 0 and channel 1 to width 1; the data mark every token with channel 0 except the sink
// token, marked with channel 1. With no time modulation, block 0 sees LN of those one-hot
// tokens. Head 0's queries are one constant vector u (a bias) and its keys are +u for the sink
// token and -u for the others, all in the dims RoPE leaves alone when there is one frame
// (the frame pairs), so every query puts its mass on the sink.
inline ParameterMap planted_sink_params() {
  const VDiTConfig c = small_config();
  ParameterMap p = params_with_random_head(c, 2, 0.2f);
  Tensor patch = Tensor::zeros(p["patch_embedding.weight"].shape());
  patch.data()[0 * (4 * 4) + 0] = 1.0f;      // [0, 0, 0, 0, 0]: width 0 <- channel 0
  patch.data()[1 * 16 + 1 * 4 + 0] = 1.0f;   // [1, 1, 0, 0, 0]: width 1 <- channel 1
  p["patch_embedding.weight"] = patch;
  p["patch_embedding.bias"] = Tensor::zeros({c.dim});
  p["time_projection.1.weight"] = Tensor::zeros(p["time_projection.1.weight"].shape());
  p["time_projection.1.bias"] = Tensor::zeros(p["time_projection.1.bias"].shape());
  // No shift or scale; the self-attention's gate (the third of the six) 1, so the sink shows.
  p["blocks.0.modulation"] = Tensor::zeros({1, 6, c.dim});
  for (int64_t i = 0; i < c.dim; ++i) p["blocks.0.modulation"].data()[2 * c.dim + i] = 1.0f;
  const int64_t frame_dims = 2 * rope_axis_pairs(c.head_dim())[0];
  Tensor q_bias = Tensor::zeros({c.dim}), k_weight = Tensor::zeros({c.dim, c.dim});
  for (int64_t j = 0; j < frame_dims; ++j) {
    q_bias.data()[j] = 3.0f;
    k_weight.data()[j * c.dim + 1] = 3.0f;   // + width 1 (the sink's mark)
    k_weight.data()[j * c.dim + 0] = -3.0f;  // - width 0 (everyone else's)
  }
  p["blocks.0.self_attn.q.weight"] = Tensor::zeros({c.dim, c.dim});
  p["blocks.0.self_attn.q.bias"] = q_bias;
  p["blocks.0.self_attn.k.weight"] = k_weight;
  p["blocks.0.self_attn.k.bias"] = Tensor::zeros({c.dim});
  // Head 0's values: component 0 is width 1 of the normed token, everything else zero. The
  // normed one-hot tokens are (e - 1/d) / std with the same std for all, so the sink's value
  // norm is (d - 1) / (d std) and every other token's 1 / (d std): kSinkValueRatio over the mean.
  Tensor v_weight = p["blocks.0.self_attn.v.weight"], v_bias = p["blocks.0.self_attn.v.bias"];
  for (int64_t j = 0; j < c.head_dim(); ++j) {
    for (int64_t i = 0; i < c.dim; ++i) v_weight.data()[j * c.dim + i] = 0.0f;
    v_bias.data()[j] = 0.0f;
  }
  v_weight.data()[1] = 1.0f;
  return p;
}

inline void write_marked_data(const std::string& path) {
  Rng rng(4);
  std::vector<LatentSample> samples;
  for (int s = 0; s < 2; ++s) {
    Tensor latents = Tensor::zeros({4, 1, 8, 8});
    for (int64_t t = 0; t < 16; ++t) {
      const int64_t row = t / 4 * 2, col = t % 4 * 2;  // top-left pixel of token t's patch
      latents.data()[(t == kSinkToken ? 1 : 0) * 64 + row * 8 + col] = 1.0f;
    }
    samples.push_back({latents, rng.normal_tensor({3, 6}), "marked"});
  }
  write_latent_dataset(path, samples);
}

// The planted sink's value norm over the mean value norm of head 0's 16 keys: 23 / ((23 + 15) / 16).
inline constexpr double kSinkValueRatio = 23.0 * 16.0 / 38.0;

}  // namespace vdit::testing
