#pragma once
// Each CUDA source file fills in its own entries of the backend table; register.cpp calls them.
#include "autograd/cuda_backend.h"

namespace vdit::cuda {

void register_runtime(CudaBackend& backend);    // runtime.cpp, allocator.cpp, memory_kernels.cu
void register_elementwise(CudaBackend& backend);  // ops_elementwise.cu
void register_shape(CudaBackend& backend);        // ops_shape.cu
void register_reduce(CudaBackend& backend);       // ops_reduce.cu
void register_norm(CudaBackend& backend);         // ops_norm.cu
void register_rope(CudaBackend& backend);         // ops_rope.cu
void register_optim(CudaBackend& backend);        // ops_optim.cu
void register_linear(CudaBackend& backend);       // ops_linear.cpp (cuBLASLt)
void register_attention(CudaBackend& backend);    // ops_attention.cpp (attention_kernels.cu)

}  // namespace vdit::cuda
