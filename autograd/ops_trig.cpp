// d sin = cos dx, d cos = -sin dx; the backward sits beside the forward as for every op.
#include "autograd/ops_trig.h"

#include <cmath>

#include "autograd/check.h"
#include "autograd/grad_accumulate.h"
#include "autograd/tape.h"

namespace vdit {

namespace {

Tensor trig(const Tensor& x_in, bool cosine) {
  VDIT_CHECK(!x_in.is_cuda(), (cosine ? "cos" : "sin") << " has no CUDA kernel: compute the angles on the host");
  const Tensor x = x_in.to_f32();
  const int64_t n = x.numel();
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  for (int64_t i = 0; i < n; ++i) po[i] = cosine ? std::cos(px[i]) : std::sin(px[i]);
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy) return;
    const float* v = x.data();
    float* g = gx->buffer();
    for (int64_t i = 0; i < n; ++i) g[i] += dy[i] * (cosine ? -std::sin(v[i]) : std::cos(v[i]));
  });
  return out;
}

}  // namespace

Tensor sin(const Tensor& x) { return trig(x, false); }
Tensor cos(const Tensor& x) { return trig(x, true); }

}  // namespace vdit
