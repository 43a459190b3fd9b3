// Rotary position embedding on adjacent pairs (WAN21.md, "3D RoPE"): pair j of a head,
// (x[2j], x[2j+1]), read as the complex number x[2j] + i x[2j+1], is multiplied by
// exp(i angle[n, j]). The backward pass is the rotation by -angle.
#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"

namespace vdit {

namespace {

// dst (+)= src rotated by the table angles, or by their negatives when `inverse`.
void rotate_pairs(const float* src, float* dst, const float* cos, const float* sin, int64_t outer,
                  int64_t tokens, int64_t heads, int64_t head_dim, bool inverse, bool accumulate) {
  const int64_t pairs = head_dim / 2;
  const float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel for collapse(2) if (outer * tokens * heads * head_dim > (1 << 15)) schedule(static)
  for (int64_t b = 0; b < outer; ++b)
    for (int64_t n = 0; n < tokens; ++n) {
      const float* c = cos + n * pairs;
      const float* s = sin + n * pairs;
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base = ((b * tokens + n) * heads + h) * head_dim;
        const float* x = src + base;
        float* y = dst + base;
        for (int64_t j = 0; j < pairs; ++j) {
          const float x0 = x[2 * j], x1 = x[2 * j + 1], sj = sign * s[j];
          const float y0 = x0 * c[j] - x1 * sj, y1 = x0 * sj + x1 * c[j];
          if (accumulate) {
            y[2 * j] += y0;
            y[2 * j + 1] += y1;
          } else {
            y[2 * j] = y0;
            y[2 * j + 1] = y1;
          }
        }
      }
    }
}

}  // namespace

Tensor rope(const Tensor& x_in, const Tensor& cos_in, const Tensor& sin_in) {
  if (on_cuda("rope", {&x_in, &cos_in, &sin_in})) return cuda_op(&CudaBackend::rope, "rope")(x_in, cos_in, sin_in);
  const Tensor x = x_in.to_f32(), cos = cos_in.to_f32(), sin = sin_in.to_f32();
  VDIT_CHECK(x.ndim() >= 3, "rope input must be [..., N, H, hd], got " << to_string(x.shape()));
  const int64_t tokens = x.size(-3), heads = x.size(-2), head_dim = x.size(-1);
  VDIT_CHECK(head_dim % 2 == 0, "rope needs an even head_dim, got " << head_dim);
  const Shape table{tokens, head_dim / 2};
  VDIT_CHECK(cos.shape() == table && sin.shape() == table,
             "rope tables " << to_string(cos.shape()) << " / " << to_string(sin.shape())
                            << " do not match " << to_string(table) << " for input " << to_string(x.shape()));
  VDIT_CHECK(!cos_in.requires_grad() && !sin_in.requires_grad(), "rope tables take no gradient");
  const int64_t outer = x.numel() / (tokens * heads * head_dim);
  Tensor out = Tensor::empty(x.shape());
  rotate_pairs(x.data(), out.data(), cos.data(), sin.data(), outer, tokens, heads, head_dim, false, false);
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Tape::record([=] {
    if (const float* dy = arrived(go))
      rotate_pairs(dy, gx->buffer(), cos.data(), sin.data(), outer, tokens, heads, head_dim, true, true);
  });
  return out;
}

}  // namespace vdit
