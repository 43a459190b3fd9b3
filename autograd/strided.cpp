#include "autograd/strided.h"

#include "autograd/check.h"
#include "autograd/grad_accumulate.h"

namespace vdit {

Strides contiguous_strides(const Shape& shape) {
  Strides s(shape.size());
  int64_t step = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    s[i] = step;
    step *= shape[i];
  }
  return s;
}

Strides broadcast_strides(const Shape& in, const Shape& out) {
  VDIT_CHECK(in.size() <= out.size(), "cannot broadcast " << to_string(in) << " to " << to_string(out));
  Strides own = contiguous_strides(in);
  Strides s(out.size(), 0);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    VDIT_CHECK(in[i] == out[lead + i] || in[i] == 1,
               "cannot broadcast " << to_string(in) << " to " << to_string(out));
    s[lead + i] = in[i] == 1 ? 0 : own[i];
  }
  return s;
}

ReducedShape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdim) {
  const int nd = static_cast<int>(shape.size());
  std::vector<bool> reduced(nd, false);
  for (int a : axes) reduced[normalize_axis(a, nd)] = true;
  ReducedShape r{shape, {}, 1};
  for (int i = 0; i < nd; ++i) {
    if (reduced[i]) {
      r.count *= r.kept[i];
      r.kept[i] = 1;
      if (keepdim) r.out.push_back(1);
    } else {
      r.out.push_back(r.kept[i]);
    }
  }
  return r;
}

Shape concat_shape(const std::vector<Shape>& shapes, int axis) {
  Shape out = shapes[0];
  out[axis] = 0;
  for (const Shape& shape : shapes) {
    VDIT_CHECK(shape.size() == out.size(), "concat of tensors of different rank");
    Shape s = shape, expect = out;
    s[axis] = 0;
    expect[axis] = 0;
    VDIT_CHECK(s == expect, "concat along axis " << axis << ": " << to_string(shape) << " does not match "
                                                 << to_string(shapes[0]));
    out[axis] += shape[axis];
  }
  return out;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    VDIT_CHECK(da == db || da == 1 || db == 1,
               "shapes " << to_string(a) << " and " << to_string(b) << " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

StridedLoop::StridedLoop(const Shape& shape, const std::vector<Strides>& strides)
    : operands_(static_cast<int>(strides.size())) {
  VDIT_CHECK(operands_ <= kMaxOperands, "StridedLoop takes at most " << kMaxOperands << " operands");
  for (const Strides& s : strides) VDIT_CHECK(s.size() == shape.size(), "stride rank mismatch");
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    if (shape[axis] == 1) continue;  // a unit axis moves no operand
    Offsets st{};
    for (int i = 0; i < operands_; ++i) st[i] = strides[i][axis];
    // Merge into the previous axis when every operand steps over it as one longer axis.
    bool merge = !sizes_.empty();
    for (int i = 0; merge && i < operands_; ++i)
      merge = strides_.back()[i] == st[i] * shape[axis];
    if (merge) {
      sizes_.back() *= shape[axis];
      strides_.back() = st;
    } else {
      sizes_.push_back(shape[axis]);
      strides_.push_back(st);
    }
  }
  runs_ = 1;
  for (size_t i = 0; i + 1 < sizes_.size(); ++i) runs_ *= sizes_[i];
  if (numel(shape) == 0) runs_ = 0;
}

StridedLoop::Offsets StridedLoop::offsets(int64_t r) const {
  Offsets off{};
  for (int axis = static_cast<int>(sizes_.size()) - 2; axis >= 0; --axis) {
    int64_t idx = r % sizes_[axis];
    r /= sizes_[axis];
    for (int i = 0; i < operands_; ++i) off[i] += idx * strides_[axis][i];
  }
  return off;
}

}  // namespace vdit
