// Shape and movement ops. reshape shares storage; the others copy through strided loops, and
// their backward is the same copy in the other direction, added into the input's gradient.
#include <numeric>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"
#include "autograd/strided.h"

namespace vdit {

namespace {

// dst[dst_strides . idx] (+)= src[src_strides . idx] for every index of `shape`.
void strided_copy(const Shape& shape, float* dst, const Strides& dst_strides, const float* src,
                  const Strides& src_strides, bool accumulate) {
  StridedLoop loop(shape, {dst_strides, src_strides});
  loop.for_each_run(true, [&](const StridedLoop::Offsets& off, int64_t n,
                              const StridedLoop::Offsets& st) {
    float* d = dst + off[0];
    const float* s = src + off[1];
    if (accumulate)
      for (int64_t i = 0; i < n; ++i) d[i * st[0]] += s[i * st[1]];
    else if (st[0] == 1 && st[1] == 1)
      std::copy(s, s + n, d);
    else
      for (int64_t i = 0; i < n; ++i) d[i * st[0]] = s[i * st[1]];
  });
}

// The strides and element offset of the block [begin, end) along `axis` of a contiguous
// tensor of shape `whole`.
struct Block {
  Strides strides;
  int64_t offset;
};
Block block_of(const Shape& whole, int axis, int64_t begin) {
  Strides strides = contiguous_strides(whole);
  return {strides, begin * strides[axis]};
}

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) {
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      VDIT_CHECK(infer < 0, "reshape to " << to_string(shape) << ": more than one -1");
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0 && known > 0) shape[infer] = x.numel() / known;
  VDIT_CHECK(numel(shape) == x.numel(),
             "cannot reshape " << to_string(x.shape()) << " to " << to_string(shape));
  Tensor out = Tensor::borrow(shape, x.dtype(), x.impl()->data, x.impl()->owner, x.device());
  if (!needs_grad({&x})) return out;
  GradRef go = Tape::output(out), gx = x.grad_ref();
  const Device device = x.device();
  Tape::record([go, gx, shape, device] {
    const float* dy = arrived(go);
    if (!dy || take_grad(*gx, *go)) return;  // the input's first gradient is the output's, moved
    if (device.is_cuda())
      cuda_backend().accumulate(gx->buffer(), dy, numel(shape), 1.0f, device.index);
    else
      accumulate_grad(gx, shape, dy);
  });
  return out;
}

Tensor permute(const Tensor& x_in, const std::vector<int>& axes) {
  if (on_cuda("permute", {&x_in})) return cuda_op(&CudaBackend::permute, "permute")(x_in, axes);
  const Tensor x = x_in.to_f32();
  const int nd = x.ndim();
  VDIT_CHECK(static_cast<int>(axes.size()) == nd,
             "permute of " << to_string(x.shape()) << " needs " << nd << " axes");
  std::vector<int> seen(nd, 0);
  Shape out_shape(nd);
  Strides in_strides = contiguous_strides(x.shape()), read(nd);
  for (int i = 0; i < nd; ++i) {
    int a = normalize_axis(axes[i], nd);
    VDIT_CHECK(!seen[a]++, "permute names axis " << a << " twice");
    out_shape[i] = x.size(a);
    read[i] = in_strides[a];
  }
  Tensor out = Tensor::empty(out_shape);
  const Strides out_strides = contiguous_strides(out_shape);
  strided_copy(out_shape, out.data(), out_strides, x.data(), read, false);
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Tape::record([go, gx, out_shape, out_strides, read] {
    if (const float* dy = arrived(go))
      strided_copy(out_shape, gx->buffer(), read, dy, out_strides, true);
  });
  return out;
}

Tensor transpose(const Tensor& x, int axis_a, int axis_b) {
  std::vector<int> axes(x.ndim());
  std::iota(axes.begin(), axes.end(), 0);
  std::swap(axes[normalize_axis(axis_a, x.ndim())], axes[normalize_axis(axis_b, x.ndim())]);
  return permute(x, axes);
}

Tensor slice(const Tensor& x_in, int axis, int64_t begin, int64_t end) {
  if (on_cuda("slice", {&x_in})) return cuda_op(&CudaBackend::slice, "slice")(x_in, axis, begin, end);
  const Tensor x = x_in.to_f32();
  const int a = normalize_axis(axis, x.ndim());
  VDIT_CHECK(0 <= begin && begin <= end && end <= x.size(a),
             "slice [" << begin << ", " << end << ") out of range for axis " << a << " of "
                       << to_string(x.shape()));
  Shape out_shape = x.shape();
  out_shape[a] = end - begin;
  Tensor out = Tensor::empty(out_shape);
  const Block block = block_of(x.shape(), a, begin);
  const Strides out_strides = contiguous_strides(out_shape);
  strided_copy(out_shape, out.data(), out_strides, x.data() + block.offset, block.strides, false);
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Tape::record([go, gx, out_shape, out_strides, block] {
    if (const float* dy = arrived(go))
      strided_copy(out_shape, gx->buffer() + block.offset, block.strides, dy, out_strides, true);
  });
  return out;
}

Tensor concat(const std::vector<Tensor>& parts, int axis) {
  VDIT_CHECK(!parts.empty(), "concat of no tensors");
  bool any_cuda = false;
  for (const Tensor& p : parts) any_cuda = on_cuda("concat", {&parts[0], &p}) || any_cuda;
  if (any_cuda) return cuda_op(&CudaBackend::concat, "concat")(parts, axis);
  const int a = normalize_axis(axis, parts[0].ndim());
  std::vector<Shape> part_shapes;
  for (const Tensor& p : parts) part_shapes.push_back(p.shape());
  const Shape out_shape = concat_shape(part_shapes, a);
  Tensor out = Tensor::empty(out_shape);
  std::vector<Block> blocks;
  int64_t begin = 0;
  for (const Tensor& p_in : parts) {
    const Tensor p = p_in.to_f32();
    blocks.push_back(block_of(out_shape, a, begin));
    strided_copy(p.shape(), out.data() + blocks.back().offset, blocks.back().strides, p.data(),
                 contiguous_strides(p.shape()), false);
    begin += p.size(a);
  }
  bool any = false;
  for (const Tensor& p : parts) any = any || needs_grad({&p});
  if (!any) return out;
  GradRef go = Tape::output(out);
  std::vector<GradRef> slots;
  std::vector<Shape> shapes;
  for (const Tensor& p : parts) {
    slots.push_back(p.grad_ref());
    shapes.push_back(p.shape());
  }
  Tape::record([go, slots, shapes, blocks] {
    const float* dy = arrived(go);
    if (!dy) return;
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i])
        strided_copy(shapes[i], slots[i]->buffer(), contiguous_strides(shapes[i]),
                     dy + blocks[i].offset, blocks[i].strides, true);
  });
  return out;
}

std::vector<Tensor> split(const Tensor& x, int axis, const std::vector<int64_t>& sizes) {
  const int a = normalize_axis(axis, x.ndim());
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  VDIT_CHECK(total == x.size(a), "split sizes add to " << total << ", axis " << a << " of "
                                                       << to_string(x.shape()) << " has " << x.size(a));
  std::vector<Tensor> parts;
  int64_t begin = 0;
  for (int64_t s : sizes) {
    parts.push_back(slice(x, a, begin, begin + s));
    begin += s;
  }
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int axis, int chunks) {
  const int a = normalize_axis(axis, x.ndim());
  VDIT_CHECK(chunks > 0 && x.size(a) % chunks == 0,
             "axis " << a << " of " << to_string(x.shape()) << " does not split into " << chunks << " chunks");
  return split(x, a, std::vector<int64_t>(chunks, x.size(a) / chunks));
}

}  // namespace vdit
