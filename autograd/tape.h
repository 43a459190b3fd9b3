#pragma once
// The tape: a vector of backward closures in execution order, walked backwards.
//
// An op records a closure only when grad mode is on and one of its inputs requires a
// gradient; its output then requires one too. Frozen weights applied to frozen inputs record
// nothing and keep nothing alive. A closure captures the gradient slots it reads and writes
// (GradRef) and only those input values its backward formula needs.
#include <functional>
#include <initializer_list>

#include "autograd/tensor.h"

namespace vdit {

class Tape {
 public:
  using Backward = std::function<void()>;

  // Marks `out` as the result of a recorded op and returns the slot its gradient arrives in.
  static GradRef output(Tensor& out);
  static void record(Backward backward);
  // Runs every recorded closure in reverse order, releasing each (and what it saved) once run.
  static void run_backward();
  // The same for the closures recorded after the tape had `mark` entries only (a backward
  // closure that recomputes part of the forward pass runs its own nested backward this way).
  static void run_backward_to(size_t mark);
  // Drops everything recorded (e.g. after a forward pass whose gradient is not wanted).
  static void clear();
  static size_t size();

  static bool grad_enabled();
  static void set_grad_enabled(bool enabled);
};

// True when an op over these inputs must record its backward.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Within this scope nothing is recorded (evaluation, finite differences, optimizer updates).
class NoGradScope {
 public:
  NoGradScope() : previous_(Tape::grad_enabled()) { Tape::set_grad_enabled(false); }
  ~NoGradScope() { Tape::set_grad_enabled(previous_); }
  NoGradScope(const NoGradScope&) = delete;
  NoGradScope& operator=(const NoGradScope&) = delete;

 private:
  bool previous_;
};

}  // namespace vdit
