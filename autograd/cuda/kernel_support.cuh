#pragma once
// Host-side support the op kernels share: typed storage pointers, the output dtype rule of the
// README's precision table, dtype dispatch, and the strided index space (NumPy broadcasting,
// permutes, slices, concatenation) as a small struct passed to kernels by value.
#include <cuda_bf16.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "autograd/check.h"
#include "autograd/cuda/runtime.h"
#include "autograd/strided.h"
#include "autograd/tensor.h"

namespace vdit::cuda {

template <class T>
const T* in(const Tensor& t) { return static_cast<const T*>(t.storage()); }
template <class T>
T* out(const Tensor& t) { return static_cast<T*>(t.storage()); }

// bf16 when any defined input is bf16, fp32 only when every one is fp32.
inline DType output_dtype(std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->dtype() == DType::BF16) return DType::BF16;
  return DType::F32;
}

// fn(T{}) with T the storage type of `dtype` (float or __nv_bfloat16).
template <class Fn>
decltype(auto) with_dtype(DType dtype, Fn&& fn) {
  if (dtype == DType::F32) return fn(float{});
  return fn(__nv_bfloat16{});
}
#define VDIT_T(tag) std::decay_t<decltype(tag)>

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// An index space of up to kMaxDims axes (after merging) and kOps operands, each with its own
// element strides in that space (0 = broadcast). offsets() turns a flat index, row-major over
// `size`, into each operand's element offset.
constexpr int kMaxDims = 8;

template <int kOps>
struct Indexer {
  int nd = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kOps][kMaxDims] = {};

  __device__ __forceinline__ void offsets(int64_t flat, int64_t (&off)[kOps]) const {
#pragma unroll
    for (int o = 0; o < kOps; ++o) off[o] = 0;
    for (int d = nd - 1; d > 0; --d) {
      const int64_t i = flat % size[d];
      flat /= size[d];
#pragma unroll
      for (int o = 0; o < kOps; ++o) off[o] += i * stride[o][d];
    }
    if (nd > 0) {  // what is left is the outermost index: no division needed
#pragma unroll
      for (int o = 0; o < kOps; ++o) off[o] += flat * stride[o][0];
    }
  }
  // The innermost axis's length (1 for a scalar space) and each operand's stride along it.
  int64_t inner() const { return nd ? size[nd - 1] : 1; }
  int64_t inner_stride(int o) const { return nd ? stride[o][nd - 1] : 0; }
};

// The index space `shape` with each operand's strides, size-1 axes dropped and neighbouring
// axes merged wherever every operand allows it (so a contiguous space becomes one axis).
template <int kOps>
Indexer<kOps> make_indexer(const Shape& shape, const std::array<Strides, kOps>& strides) {
  Indexer<kOps> ix;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = ix.nd > 0;
    for (int o = 0; o < kOps && merge; ++o)
      merge = ix.stride[o][ix.nd - 1] == strides[o][d] * shape[d];
    if (merge) {
      ix.size[ix.nd - 1] *= shape[d];
      for (int o = 0; o < kOps; ++o) ix.stride[o][ix.nd - 1] = strides[o][d];
      continue;
    }
    VDIT_CHECK(ix.nd < kMaxDims, "CUDA strided op over " << to_string(shape) << ": more than "
                                                         << kMaxDims << " unmergeable axes");
    ix.size[ix.nd] = shape[d];
    for (int o = 0; o < kOps; ++o) ix.stride[o][ix.nd] = strides[o][d];
    ++ix.nd;
  }
  return ix;
}

// A 1-D grid-stride loop's launch: blocks_for(n) blocks of kThreads.
constexpr int kThreads = 256;

// launch(kWide tag, first, count) over n elements of a memory-bound element-wise kernel:
// `count` groups of eight from element 0 (16-byte accesses) where every pointer is 16-byte
// aligned (kWide true), then the tail one by one from `first` (kWide false).
template <class Launch>
void split_launch(int64_t n, bool aligned, Launch&& launch) {
  const int64_t groups = aligned ? n / 8 : 0;
  if (groups > 0) launch(std::true_type{}, int64_t{0}, groups);
  if (n > 8 * groups) launch(std::false_type{}, 8 * groups, n - 8 * groups);
  VDIT_CUDA_CHECK_LAUNCH();
}

// --- gradient movement (ops_reduce.cu), the device twins of autograd/grad_accumulate.h ---

// dst (+)= alpha * src summed over the axes along which `dst_shape` broadcasts to `src_shape`,
// in a fixed order (per-chunk partials, then the chunks in order): no atomics. `accumulate`
// false overwrites dst.
void reduce_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape,
                 float alpha, bool accumulate, int device);
// dst (+)= alpha * src broadcast from `src_shape` up to `dst_shape`; `accumulate` false
// overwrites dst.
void broadcast_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape,
                    float alpha, bool accumulate, int device);
// slot += alpha * reduce(src): an input's share of a gradient of shape `from` (written, not
// added, into a fresh buffer).
inline void accumulate_grad(const GradRef& slot, const Shape& from, const float* src, float alpha,
                            int device) {
  if (!slot) return;
  bool fresh = false;
  float* dst = slot->buffer_for_write(&fresh);
  reduce_into(dst, slot->shape, src, from, alpha, !fresh, device);
}
// *total += the sum of x[i]^2 over i < n, in double in a fixed order (*total on the device).
void add_sum_of_squares(const float* x, int64_t n, double* total, int device);
// dst[k] (+)= alpha * sum over c < chunks of partials[c * count + k], c in order.
void sum_partials(const float* partials, int64_t chunks, int64_t count, float* dst, float alpha,
                  bool accumulate, int device);

}  // namespace vdit::cuda
