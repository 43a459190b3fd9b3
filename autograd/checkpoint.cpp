#include "autograd/checkpoint.h"

#include <algorithm>

#include "autograd/cuda_backend.h"
#include "autograd/grad_accumulate.h"
#include "autograd/tape.h"

namespace vdit {

namespace {

thread_local int g_recomputing = 0;  // depth of checkpoint reruns on this thread

struct RecomputingScope {
  RecomputingScope() { ++g_recomputing; }
  ~RecomputingScope() { --g_recomputing; }
};

}  // namespace

bool checkpoint_recomputing() { return g_recomputing > 0; }

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
    Tensor out;
    {
      RecomputingScope scope;
      out = f(input);
    }
    // Seed the recomputed output with the gradient that arrived (moved: gy is not read again)
    // and run only what f recorded. Gradients live on their tensor's device: on a GPU the copy
    // is the backend's.
    const GradRef seed = out.grad_ref();
    if (!take_grad(*seed, *gy)) {
      float* to = seed->buffer();
      if (out.is_cuda())
        cuda_backend().copy(to, out.device(), dy, out.device(), static_cast<size_t>(out.numel()) * sizeof(float));
      else
        std::copy(dy, dy + out.numel(), to);
    }
    Tape::run_backward_to(mark);
    Tape::set_grad_enabled(grad_mode);
    const Tensor g = input.grad();
    if (!g.defined() || !gx || take_grad(*gx, *input.grad_ref())) return;
    if (g.is_cuda())
      cuda_backend().accumulate(gx->buffer(), static_cast<const float*>(g.storage()), g.numel(), 1.0f, g.device().index);
    else
      accumulate_grad(gx, g.shape(), g.data());
  });
  return y;
}

}  // namespace vdit
