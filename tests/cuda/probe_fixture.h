#pragma once
// The tiny Wan-shaped model and probe data that the GPU-against-CPU command tests of diagnose
// and study sparsity share: head_dim 64 (the GPU kernels' smallest), bf16-exact weights so both
// devices start from the same values, and two probe samples of 2 x 4 x 4 tokens.
#include <string>

#include "data/latent_dataset.h"
#include "data/model_io.h"
#include "tests/fixtures.h"

namespace vdit::testing {

// Writes DIR/model.h5 (`layers` blocks) and DIR/data.h5.
inline void write_gpu_probe_fixture(const ScratchDir& dir, int64_t layers) {
  const VDiTConfig c = small_config({.dim = 128, .ffn_dim = 64, .num_heads = 2, .num_layers = layers});
  ParameterMap params = params_with_random_head(c, 7, 0.2f);
  for (auto& [name, value] : params) {
    // Sharper attention than the initialisation's (whose maps are near uniform): larger q/k norms.
    if (name.ends_with("norm_q.weight") || name.ends_with("norm_k.weight")) value = scale(value, 3.0f);
    value = value.to_bf16().to_f32();
  }
  save_model(dir / "model.h5", c, params, ModelFormat::H5);
  Rng rng(8);
  write_latent_dataset(dir / "data.h5", {{rng.normal_tensor({4, 2, 8, 8}), rng.normal_tensor({3, 6}), "a"},
                                         {rng.normal_tensor({4, 2, 8, 8}), rng.normal_tensor({3, 6}), "b"}});
}

}  // namespace vdit::testing
