#pragma once
// Each CUDA source file fills in its own entries of the backend table; register.cpp calls them.
#include "autograd/cuda_backend.h"

namespace vdit::cuda {

void register_runtime(CudaBackend& backend);    // runtime.cpp, allocator.cpp, memory_kernels.cu

}  // namespace vdit::cuda
