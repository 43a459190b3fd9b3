#include "autograd/grad_accumulate.h"

#include "autograd/check.h"
#include "autograd/strided.h"

namespace vdit {

bool take_grad(GradSlot& to, GradSlot& from) {
  if (to.grad || !from.grad || &from == &to || numel(from.shape) != numel(to.shape) || from.device != to.device)
    return false;
  to.grad = Tensor::borrow(to.shape, DType::F32, from.grad->data, from.grad->owner, to.device).impl_ptr();
  from.grad.reset();
  return true;
}

void reduce_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape,
                 float alpha) {
  const int64_t n = numel(src_shape);
  if (numel(dst_shape) == n) {
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] += alpha * src[i];
    return;
  }
  StridedLoop loop(src_shape, {broadcast_strides(dst_shape, src_shape), contiguous_strides(src_shape)});
  // Runs may add into the same destination (an outer axis is reduced), so this loop is serial.
  loop.for_each_run(false, [&](const StridedLoop::Offsets& off, int64_t len,
                               const StridedLoop::Offsets& st) {
    float* d = dst + off[0];
    const float* s = src + off[1];
    if (st[0] == 0) {
      double total = 0.0;  // a long reduction: accumulate in double
      for (int64_t i = 0; i < len; ++i) total += s[i * st[1]];
      *d += alpha * static_cast<float>(total);
    } else {
      for (int64_t i = 0; i < len; ++i) d[i * st[0]] += alpha * s[i * st[1]];
    }
  });
}

void broadcast_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape,
                    float alpha) {
  StridedLoop loop(dst_shape, {contiguous_strides(dst_shape), broadcast_strides(src_shape, dst_shape)});
  loop.for_each_run(true, [&](const StridedLoop::Offsets& off, int64_t len,
                              const StridedLoop::Offsets& st) {
    float* d = dst + off[0];
    const float* s = src + off[1];
    for (int64_t i = 0; i < len; ++i) d[i] += alpha * s[i * st[1]];
  });
}

int normalize_axis(int axis, int ndim) {
  int a = axis < 0 ? axis + ndim : axis;
  VDIT_CHECK(a >= 0 && a < ndim, "axis " << axis << " out of range for a " << ndim << "-d tensor");
  return a;
}

}  // namespace vdit
