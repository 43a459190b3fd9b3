#pragma once
// The three inputs of the Wan transformer turned into width-d vectors (WAN21.md, steps 1-3).
#include <array>
#include <vector>

#include "layers/linear.h"

namespace vdit {

// Conv3d with kernel = stride = patch as one GEMM: latents [B, C, F, H, W] are cut into
// [B, T, C * pt * ph * pw] patches (tokens frame-major, w fastest; each patch in the conv
// weight's (c, pt, ph, pw) order) and multiplied by the weight [d, C, pt, ph, pw] seen as
// [d, C * pt * ph * pw].
struct PatchEmbedding {
  Tensor weight;
  Tensor bias;
  std::array<int64_t, 3> patch{1, 2, 2};
  Tensor operator()(const Tensor& latents) const;  // -> [B, T, d]
};

// Cut latents into patches as described above (differentiable).
Tensor patchify(const Tensor& latents, const std::array<int64_t, 3>& patch);
// The inverse of the head's layout: tokens [B, T, pt * ph * pw * C] ordered (pt, ph, pw, c),
// c fastest, back to [B, C, F, H, W] for a token grid (F', H', W').
Tensor unpatchify(const Tensor& tokens, const std::array<int64_t, 3>& grid,
                  const std::array<int64_t, 3>& patch);

// [cos(t w_0 .. t w_{h-1}), sin(t w_0 ..)] with w_j = 10000^(-j/h), h = freq_dim / 2, in
// float64, one row per timestep: [B, freq_dim].
Tensor timestep_sinusoid(const std::vector<double>& timesteps, int64_t freq_dim);

// e = L2(SiLU(L0(sinusoid))) [B, d]; e0 = P(SiLU(e)) as [B, 6, d].
struct TimeEmbedding {
  Linear embed0, embed2, projection;
  int64_t freq_dim = 256;
  struct Output {
    Tensor e;
    Tensor e0;
  };
  Output operator()(const std::vector<double>& timesteps) const;
};

// Context [B, L, text_dim] is zero-padded to text_len rows first (the padded rows are not
// masked), then L2(GELU_tanh(L0(c))) gives [B, text_len, d].
struct TextEmbedding {
  Linear embed0, embed2;
  int64_t text_len = 512;
  Tensor operator()(const Tensor& context) const;
};

}  // namespace vdit
