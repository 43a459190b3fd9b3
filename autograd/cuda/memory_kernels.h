#pragma once
// Element-wise memory kernels the runtime needs: fill, dtype conversion, gradient accumulation.
#include <cstdint>

#include "autograd/tensor.h"

namespace vdit::cuda {

void fill(void* data, DType dtype, int64_t n, float value, int device);
void convert(const void* src, DType from, void* dst, DType to, int64_t n, int device);
void accumulate(float* dst, const float* src, int64_t n, float alpha, int device);

}  // namespace vdit::cuda
