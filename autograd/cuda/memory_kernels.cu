#include <cuda_bf16.h>

#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/memory_kernels.h"
#include "autograd/cuda/runtime.h"

namespace vdit::cuda {

namespace {

// Each kernel runs over groups of eight elements (16-byte loads and stores: these kernels are
// bound by memory bandwidth) from `first`, or over single elements (`kWide` false) for
// misaligned pointers and the tail.

template <bool kWide, class T>
__global__ void fill_kernel(T* data, int64_t first, int64_t count, float value) {
  constexpr int kStep = kWide ? 8 : 1;
  float v[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) v[k] = value;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    if constexpr (kWide) store8(data + first + kStep * i, v);
    else store(data, first + i, value);
  }
}

template <bool kWide, class From, class To>
__global__ void convert_kernel(const From* src, To* dst, int64_t first, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    if constexpr (kWide) {
      float v[8];
      load8(src + first + 8 * i, v);
      store8(dst + first + 8 * i, v);
    } else {
      store(dst, first + i, load(src, first + i));
    }
  }
}

template <bool kWide>
__global__ void accumulate_kernel(float* dst, const float* src, int64_t first, int64_t count, float alpha) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    if constexpr (kWide) {
      float d[8], s[8];
      load8(dst + first + 8 * i, d);
      load8(src + first + 8 * i, s);
#pragma unroll
      for (int k = 0; k < 8; ++k) d[k] += alpha * s[k];
      store8(dst + first + 8 * i, d);
    } else {
      dst[first + i] += alpha * src[first + i];
    }
  }
}

}  // namespace

void fill(void* data, DType dtype, int64_t n, float value, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  with_dtype(dtype, [&](auto tag) {
    using T = VDIT_T(tag);
    T* p = static_cast<T*>(data);
    split_launch(n, aligned16(p), [&](auto wide, int64_t first, int64_t count) {
      fill_kernel<decltype(wide)::value><<<blocks_for(count), 256, 0, stream(device)>>>(p, first, count, value);
    });
  });
}

void convert(const void* src, DType from, void* dst, DType to, int64_t n, int device) {
  if (n == 0) return;
  VDIT_CHECK(from != to, "convert: same dtype " << dtype_name(from));
  DeviceGuard guard(device);
  with_dtype(from, [&](auto tf) {
    with_dtype(to, [&](auto tt) {
      const auto* s = static_cast<const VDIT_T(tf)*>(src);
      auto* d = static_cast<VDIT_T(tt)*>(dst);
      split_launch(n, aligned16(s) && aligned16(d), [&](auto wide, int64_t first, int64_t count) {
        convert_kernel<decltype(wide)::value><<<blocks_for(count), 256, 0, stream(device)>>>(s, d, first, count);
      });
    });
  });
}

void accumulate(float* dst, const float* src, int64_t n, float alpha, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  split_launch(n, aligned16(dst) && aligned16(src), [&](auto wide, int64_t first, int64_t count) {
    accumulate_kernel<decltype(wide)::value><<<blocks_for(count), 256, 0, stream(device)>>>(dst, src, first,
                                                                                            count, alpha);
  });
}

}  // namespace vdit::cuda
