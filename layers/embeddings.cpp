#include "layers/embeddings.h"

#include <cmath>

#include "autograd/check.h"

namespace vdit {

Tensor patchify(const Tensor& latents, const std::array<int64_t, 3>& patch) {
  VDIT_CHECK(latents.ndim() == 5, "latents must be [B, C, F, H, W], got " << to_string(latents.shape()));
  const char* axis_names[3] = {"frames", "height", "width"};
  for (int a = 0; a < 3; ++a)
    VDIT_CHECK(latents.size(2 + a) % patch[a] == 0,
               "latents " << axis_names[a] << " " << latents.size(2 + a)
                          << " is not divisible by the patch size " << patch[a]);
  const int64_t b = latents.size(0), c = latents.size(1);
  const int64_t f = latents.size(2) / patch[0], h = latents.size(3) / patch[1],
                w = latents.size(4) / patch[2];
  const Tensor cut = reshape(latents, {b, c, f, patch[0], h, patch[1], w, patch[2]});
  return reshape(permute(cut, {0, 2, 4, 6, 1, 3, 5, 7}), {b, f * h * w, -1});
}

Tensor unpatchify(const Tensor& tokens, const std::array<int64_t, 3>& grid,
                  const std::array<int64_t, 3>& patch) {
  const int64_t b = tokens.size(0);
  const Tensor cut = reshape(tokens, {b, grid[0], grid[1], grid[2], patch[0], patch[1], patch[2], -1});
  return reshape(permute(cut, {0, 7, 1, 4, 2, 5, 3, 6}),
                 {b, -1, grid[0] * patch[0], grid[1] * patch[1], grid[2] * patch[2]});
}

Tensor PatchEmbedding::operator()(const Tensor& latents) const {
  return linear(patchify(latents, patch), reshape(weight, {weight.size(0), -1}), bias);
}

Tensor timestep_sinusoid(const std::vector<double>& timesteps, int64_t freq_dim) {
  const int64_t half = freq_dim / 2;
  Tensor out = Tensor::empty({static_cast<int64_t>(timesteps.size()), freq_dim});
  float* p = out.data();
  for (double t : timesteps) {
    for (int64_t j = 0; j < half; ++j) {
      const double angle = t * std::pow(10000.0, -static_cast<double>(j) / static_cast<double>(half));
      p[j] = static_cast<float>(std::cos(angle));
      p[half + j] = static_cast<float>(std::sin(angle));
    }
    p += freq_dim;
  }
  return out;
}

TimeEmbedding::Output TimeEmbedding::operator()(const std::vector<double>& timesteps) const {
  Output out;
  // Computed on the host in float64, then moved to the weights' device ([B, freq_dim]: small).
  out.e = embed2(silu(embed0(timestep_sinusoid(timesteps, freq_dim).to(embed0.weight.device()))));
  const Tensor e0 = projection(silu(out.e));
  out.e0 = reshape(e0, {e0.size(0), 6, -1});
  return out;
}

Tensor TextEmbedding::operator()(const Tensor& context) const {
  const int64_t rows = context.size(1);
  VDIT_CHECK(rows <= text_len, "context has " << rows << " rows, more than text_len " << text_len);
  Tensor padded = context;
  if (rows < text_len)
    padded = concat({context, Tensor::zeros({context.size(0), text_len - rows, context.size(2)}, context.dtype(), context.device())}, 1);
  return embed2(gelu_tanh(embed0(padded)));
}

}  // namespace vdit
