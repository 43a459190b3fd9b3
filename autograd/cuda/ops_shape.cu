// Shape and movement ops on the device, the twins of autograd/ops_shape.cpp: permute, slice and
// concat are one strided copy with different strides; their backward is the same copy in the
// other direction, added into the input's gradient. Each destination element is written by
// one thread only (the maps are injective), so the adds need no atomics.
#include <vector>

#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/register.h"
#include "autograd/grad_accumulate.h"

namespace vdit::cuda {

namespace {

// Operand 0 is the destination, operand 1 the source.
template <class TS, class TD>
__global__ void strided_copy_kernel(const TS* src, TD* dst, Indexer<2> ix, int64_t n, bool accumulate) {
  int64_t off[2];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    ix.offsets(i, off);
    const float v = load(src, off[1]);
    store(dst, off[0], accumulate ? load(dst, off[0]) + v : v);
  }
}

// dst[dst_strides . idx] (+)= src[src_strides . idx] for every index of `shape`, converting
// between the storage types.
template <class TS, class TD>
void strided_copy(const Shape& shape, TD* dst, const Strides& dst_strides, const TS* src, const Strides& src_strides,
                  bool accumulate, int device) {
  const int64_t n = numel(shape);
  if (n == 0) return;
  DeviceGuard guard(device);
  const Indexer<2> ix = make_indexer<2>(shape, {dst_strides, src_strides});
  strided_copy_kernel<<<blocks_for(n), kThreads, 0, stream(device)>>>(src, dst, ix, n, accumulate);
  VDIT_CUDA_CHECK_LAUNCH();
}

// A copy of `x` (its dtype) read through `read` strides over `out_shape`, from `offset`.
Tensor gather(const Tensor& x, const Shape& out_shape, const Strides& read, int64_t offset) {
  Tensor result = Tensor::empty(out_shape, x.dtype(), x.device());
  with_dtype(x.dtype(), [&](auto t) {
    using T = VDIT_T(t);
    strided_copy(out_shape, out<T>(result), contiguous_strides(out_shape), in<T>(x) + offset, read, false,
                 x.device().index);
  });
  return result;
}

// The backward of a gather: the input's gradient at `read` (+offset) += dy. A gather that
// reads every element of a fresh gradient buffer (a permute) writes it instead: no zero fill.
void record_scatter_add(const Tensor& x, Tensor& result, const Strides& read, int64_t offset) {
  GradRef go = Tape::output(result), gx = x.grad_ref();
  const Shape out_shape = result.shape();
  const int device = x.device().index;
  const bool covers = numel(out_shape) == x.numel();
  Tape::record([go, gx, out_shape, read, offset, device, covers] {
    const float* dy = arrived(go);
    if (!dy) return;
    bool fresh = false;
    float* dx = covers ? gx->buffer_for_write(&fresh) : gx->buffer();
    strided_copy(out_shape, dx + offset, read, dy, contiguous_strides(out_shape), !fresh, device);
  });
}

Tensor permute_op(const Tensor& x, const std::vector<int>& axes) {
  const int nd = x.ndim();
  VDIT_CHECK(static_cast<int>(axes.size()) == nd, "permute of " << to_string(x.shape()) << " needs " << nd << " axes");
  std::vector<int> seen(nd, 0);
  Shape out_shape(nd);
  const Strides in_strides = contiguous_strides(x.shape());
  Strides read(nd);
  for (int i = 0; i < nd; ++i) {
    const int a = normalize_axis(axes[i], nd);
    VDIT_CHECK(!seen[a]++, "permute names axis " << a << " twice");
    out_shape[i] = x.size(a);
    read[i] = in_strides[a];
  }
  Tensor result = gather(x, out_shape, read, 0);
  if (needs_grad({&x})) record_scatter_add(x, result, read, 0);
  return result;
}

Tensor slice_op(const Tensor& x, int axis, int64_t begin, int64_t end) {
  const int a = normalize_axis(axis, x.ndim());
  VDIT_CHECK(0 <= begin && begin <= end && end <= x.size(a),
             "slice [" << begin << ", " << end << ") out of range for axis " << a << " of " << to_string(x.shape()));
  Shape out_shape = x.shape();
  out_shape[a] = end - begin;
  const Strides strides = contiguous_strides(x.shape());
  const int64_t offset = begin * strides[a];
  Tensor result = gather(x, out_shape, strides, offset);
  if (needs_grad({&x})) record_scatter_add(x, result, strides, offset);
  return result;
}

Tensor concat_op(const std::vector<Tensor>& parts, int axis) {
  const int a = normalize_axis(axis, parts[0].ndim());
  std::vector<Shape> part_shapes;
  for (const Tensor& p : parts) part_shapes.push_back(p.shape());
  const Shape out_shape = concat_shape(part_shapes, a);
  DType dtype = DType::F32;  // bf16 when any part is (output_dtype over a list)
  for (const Tensor& p : parts)
    if (p.dtype() == DType::BF16) dtype = DType::BF16;
  Tensor result = Tensor::empty(out_shape, dtype, parts[0].device());
  const int device = parts[0].device().index;
  const Strides out_strides = contiguous_strides(out_shape);
  // Part i fills the block [begin_i, begin_i + size_i) along the axis: offset begin_i * stride.
  std::vector<int64_t> offsets;
  int64_t begin = 0;
  for (const Tensor& p : parts) {
    offsets.push_back(begin * out_strides[a]);
    with_dtype(p.dtype(), [&](auto ts) {
      with_dtype(dtype, [&](auto td) {
        strided_copy(p.shape(), out<VDIT_T(td)>(result) + offsets.back(), out_strides, in<VDIT_T(ts)>(p),
                     contiguous_strides(p.shape()), false, device);
      });
    });
    begin += p.size(a);
  }
  bool any = false;
  for (const Tensor& p : parts) any = any || needs_grad({&p});
  if (!any) return result;
  GradRef go = Tape::output(result);
  std::vector<GradRef> slots;
  std::vector<Shape> shapes;
  for (const Tensor& p : parts) {
    slots.push_back(p.grad_ref());
    shapes.push_back(p.shape());
  }
  Tape::record([go, slots, shapes, offsets, out_strides, device] {
    const float* dy = arrived(go);
    if (!dy) return;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (!slots[i]) continue;
      bool fresh = false;  // each part's gradient is all of its slot: a fresh one is written
      float* dx = slots[i]->buffer_for_write(&fresh);
      strided_copy(shapes[i], dx, contiguous_strides(shapes[i]), dy + offsets[i], out_strides, !fresh, device);
    }
  });
  return result;
}

}  // namespace

void register_shape(CudaBackend& backend) {
  backend.permute = permute_op;
  backend.slice = slice_op;
  backend.concat = concat_op;
}

}  // namespace vdit::cuda
