#pragma once
// Recomputation instead of storage (activation checkpointing): y = f(x) runs without
// recording anything and keeps only x; the backward pass reruns f with recording and
// backpropagates through that. For a function whose only input needing a gradient is x, such
// as a frozen transformer block after the first trainable one: its activations then cost one
// input tensor instead of everything its backward would have saved, for one more forward.
#include <functional>

#include "autograd/tensor.h"

namespace vdit {

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& f, const Tensor& x);

// True while a checkpoint's backward reruns its function (on this thread): what that rerun
// records lives only until its own backward has run, so a nested checkpoint saves nothing.
bool checkpoint_recomputing();

}  // namespace vdit
