#pragma once
// Template part of cuda_backend.h.
#include "autograd/check.h"

namespace vdit {

template <class Fn>
Fn cuda_op(Fn CudaBackend::*entry, const char* op) {
  Fn fn = cuda_backend().*entry;
  VDIT_CHECK(fn != nullptr, op << " has no CUDA implementation (its inputs are on a CUDA device; "
                               "copy them with to(cpu) to run it on the CPU)");
  return fn;
}

}  // namespace vdit
