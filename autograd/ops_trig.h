#pragma once
// Differentiable sine and cosine, for rotary angles that are themselves trained (Mochi's learned
// RoPE frequencies, MOCHI.md "Patches and positions"). CPU only: on the GPU the tables of frozen
// frequencies are computed on the host instead, and training them there is an error naming the op.
#include "autograd/tensor.h"

namespace vdit {

Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);

}  // namespace vdit
