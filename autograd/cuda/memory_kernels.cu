#include <cuda_bf16.h>

#include "autograd/cuda/memory_kernels.h"
#include "autograd/cuda/runtime.h"

namespace vdit::cuda {

namespace {

template <class T>
__device__ T from_float(float v);
template <>
__device__ float from_float<float>(float v) { return v; }
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ float to_float(float v) { return v; }
__device__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__global__ void fill_kernel(T* data, int64_t n, float value) {
  const T v = from_float<T>(value);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    data[i] = v;
}

template <class From, class To>
__global__ void convert_kernel(const From* src, To* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = from_float<To>(to_float(src[i]));
}

__global__ void accumulate_kernel(float* dst, const float* src, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] += alpha * src[i];
}

}  // namespace

void fill(void* data, DType dtype, int64_t n, float value, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  if (dtype == DType::F32)
    fill_kernel<<<blocks_for(n), 256, 0, stream(device)>>>(static_cast<float*>(data), n, value);
  else
    fill_kernel<<<blocks_for(n), 256, 0, stream(device)>>>(static_cast<__nv_bfloat16*>(data), n, value);
  VDIT_CUDA_CHECK_LAUNCH();
}

void convert(const void* src, DType from, void* dst, DType to, int64_t n, int device) {
  if (n == 0) return;
  VDIT_CHECK(from != to, "convert: same dtype " << dtype_name(from));
  DeviceGuard guard(device);
  if (from == DType::F32)
    convert_kernel<<<blocks_for(n), 256, 0, stream(device)>>>(
        static_cast<const float*>(src), static_cast<__nv_bfloat16*>(dst), n);
  else
    convert_kernel<<<blocks_for(n), 256, 0, stream(device)>>>(
        static_cast<const __nv_bfloat16*>(src), static_cast<float*>(dst), n);
  VDIT_CUDA_CHECK_LAUNCH();
}

void accumulate(float* dst, const float* src, int64_t n, float alpha, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  accumulate_kernel<<<blocks_for(n), 256, 0, stream(device)>>>(dst, src, n, alpha);
  VDIT_CUDA_CHECK_LAUNCH();
}

}  // namespace vdit::cuda
