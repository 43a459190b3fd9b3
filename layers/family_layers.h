#pragma once
// Small pieces the Mochi-1 and CogVideoX-2b layers share (their sheets, MOCHI.md and
// COGVIDEOX.md): per-sample modulation vectors cut into chunks, head splitting, and the
// per-frame patch embedding (a Conv2d with kernel = stride = p, i.e. Wan's with patch (1, p, p)).
#include <array>
#include <vector>

#include "layers/embeddings.h"
#include "layers/linear.h"

namespace vdit {

// The Linear without a bias whose weight is stored under `prefix`.weight.
Linear unbiased_linear_from(const ParameterMap& params, const std::string& prefix);
// `layer`(conditioning) [B, count * w] cut into `count` tensors [B, 1, w] that broadcast over
// a sample's tokens, in the order the layer's rows hold them.
std::vector<Tensor> modulation_chunks(const Linear& layer, const Tensor& conditioning, int count);
// [B, N, n * hd] -> [B, N, n, hd].
Tensor split_heads(const Tensor& x, int64_t heads);
// [B, N, n, hd] -> [B, N, n * hd].
Tensor merge_heads(const Tensor& x);
// The patch embedding whose weight [d, C, p, p] is stored under `prefix`.weight.
PatchEmbedding frame_patch_embedding(const ParameterMap& params, const std::string& prefix, int64_t patch);
// The token grid (frames, rows, columns) of latents [B, C, F, H, W] cut into p x p patches.
std::array<int64_t, 3> frame_patch_grid(const Tensor& latents, int64_t patch);
// Checks latents [B, channels, F, H, W], one timestep per sample and context [B, L, text_dim];
// returns B. Errors name the expected and the given shapes.
int64_t check_model_inputs(const Tensor& latents, int64_t channels, const std::vector<double>& timesteps,
                           const Tensor& context, int64_t text_dim);
// A [B, N] mask of ones on `like`'s device.
Tensor ones_mask(int64_t batch, int64_t length, const Tensor& like);

}  // namespace vdit
