#pragma once
// Iteration over an index space shared by several operands, each with its own element
// strides in that space (stride 0 = broadcast along that axis). Broadcasting, reductions,
// permutes, slices and concatenation are all this one loop with different strides.
#include <array>
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

using Strides = std::vector<int64_t>;

Strides contiguous_strides(const Shape& shape);
// Strides of a tensor of shape `in` read as shape `out` under NumPy broadcasting rules.
Strides broadcast_strides(const Shape& in, const Shape& out);
Shape broadcast_shapes(const Shape& a, const Shape& b);

// The shapes of a sum or mean over `axes` (any order, negative from the end): `kept` is the
// input's shape with those axes set to 1 (what the gradient broadcasts back from), `out` the
// result's (without them unless keepdim); `count` inputs go into each output.
struct ReducedShape {
  Shape kept, out;
  int64_t count = 1;
};
ReducedShape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdim);

// The shape of `shapes` concatenated along `axis` (already normalised); an error naming the
// first shape that does not match the first one off that axis.
Shape concat_shape(const std::vector<Shape>& shapes, int axis);

class StridedLoop {
 public:
  static constexpr int kMaxOperands = 3;
  using Offsets = std::array<int64_t, kMaxOperands>;

  // `strides[i]` has one entry per axis of `shape`. Axes are merged where every operand
  // allows, so a contiguous loop becomes one flat run.
  StridedLoop(const Shape& shape, const std::vector<Strides>& strides);

  int64_t runs() const { return runs_; }
  int64_t run_length() const { return sizes_.empty() ? 1 : sizes_.back(); }
  int64_t inner_stride(int operand) const {
    return sizes_.empty() ? 0 : strides_.back()[operand];
  }
  // Element offsets of every operand at the start of run `r`.
  Offsets offsets(int64_t r) const;

  // fn(offsets, length, inner_strides) for every run; runs in parallel when `parallel` and
  // the loop is large (only when runs write disjoint memory).
  template <class Fn>
  void for_each_run(bool parallel, Fn fn) const {
    const int64_t len = run_length();
    Offsets inner{};
    for (int i = 0; i < kMaxOperands; ++i) inner[i] = i < operands_ ? inner_stride(i) : 0;
    const bool go_parallel = parallel && runs_ > 1 && runs_ * len > (1 << 15);
#pragma omp parallel for if (go_parallel) schedule(static)
    for (int64_t r = 0; r < runs_; ++r) fn(offsets(r), len, inner);
  }

 private:
  int operands_;
  std::vector<int64_t> sizes_;  // merged axes, outermost first
  std::vector<Offsets> strides_;
  int64_t runs_;
};

}  // namespace vdit
