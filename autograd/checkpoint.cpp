#include "autograd/checkpoint.h"

#include <algorithm>

#include "autograd/grad_accumulate.h"
#include "autograd/tape.h"

namespace vdit {

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  Tensor y;
  {
    NoGradScope no_grad;
    y = f(x.detach());
  }
  if (!needs_grad({&x})) return y;
  GradRef gy = Tape::output(y), gx = x.grad_ref();
  const Tensor saved = x.detach();
  Tape::record([f, saved, gy, gx] {
    const float* dy = arrived(gy);
    if (!dy) return;
    const bool grad_mode = Tape::grad_enabled();
    Tape::set_grad_enabled(true);
    Tensor input = saved.detach();  // a fresh leaf over the same values, with its own gradient
    input.set_requires_grad(true);
    const size_t mark = Tape::size();
    const Tensor out = f(input);
    // Seed the recomputed output with the gradient that arrived and run only what f recorded.
    float* seed = out.grad_ref()->buffer();
    std::copy(dy, dy + out.numel(), seed);
    Tape::run_backward_to(mark);
    Tape::set_grad_enabled(grad_mode);
    if (const Tensor g = input.grad(); g.defined()) accumulate_grad(gx, g.shape(), g.data());
  });
  return y;
}

}  // namespace vdit
