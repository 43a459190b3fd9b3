#include "autograd/tape.h"

#include <vector>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"

namespace vdit {

namespace {

// One tape and one grad mode per thread: ops run from OpenMP workers never record.
thread_local std::vector<Tape::Backward> g_tape;
thread_local bool g_grad_enabled = true;

}  // namespace

GradRef Tape::output(Tensor& out) {
  out.set_requires_grad(true);
  return out.grad_ref();
}

void Tape::record(Backward backward) { g_tape.push_back(std::move(backward)); }

void Tape::run_backward() { run_backward_to(0); }

void Tape::run_backward_to(size_t mark) {
  while (g_tape.size() > mark) {
    Backward step = std::move(g_tape.back());
    g_tape.pop_back();
    step();  // `step` and the activations it saved are released at the end of this scope
  }
}

void Tape::clear() { g_tape.clear(); }
size_t Tape::size() { return g_tape.size(); }
bool Tape::grad_enabled() { return g_grad_enabled; }
void Tape::set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void Tensor::backward() const {
  VDIT_CHECK(numel() == 1, "backward() needs a scalar, got shape " << to_string(shape()));
  VDIT_CHECK(requires_grad(), "backward() on a tensor that does not require a gradient");
  float* seed = grad_ref()->buffer();
  if (is_cuda()) {
    const Tensor one = Tensor::full({1}, 1.0f).to(device());
    cuda_backend().accumulate(seed, static_cast<const float*>(one.storage()), 1, 1.0f,
                              device().index);
  } else {
    seed[0] += 1.0f;
  }
  Tape::run_backward();
}

}  // namespace vdit
