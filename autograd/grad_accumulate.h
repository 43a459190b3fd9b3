#pragma once
// Moving gradients between shapes: summing over broadcast axes, and spreading back over them.
#include "autograd/tensor.h"

namespace vdit {

// The gradient that reached an op's output, or null when none did.
inline const float* arrived(const GradRef& slot) { return slot ? slot->get() : nullptr; }

// Moves `from`'s gradient into `to` when `to` has none yet (same element count and device; seen
// as `to`'s shape; `from` is left empty) instead of copying it; false, and nothing moved,
// otherwise. For an op whose input's gradient is its output's (reshape, add): the output's slot
// is not read again once that op's backward has run.
bool take_grad(GradSlot& to, GradSlot& from);

// dst += alpha * src summed over the axes along which `dst_shape` broadcasts to `src_shape`.
// Equal element counts are a plain add (the shapes may differ, as for a reshape).
void reduce_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape,
                 float alpha = 1.0f);
// dst += alpha * src broadcast from `src_shape` up to `dst_shape`.
void broadcast_into(float* dst, const Shape& dst_shape, const float* src, const Shape& src_shape,
                    float alpha = 1.0f);

// slot += alpha * reduce(src): an input's share of a gradient of shape `from`.
inline void accumulate_grad(const GradRef& slot, const Shape& from, const float* src,
                            float alpha = 1.0f) {
  if (slot) reduce_into(slot->buffer(), slot->shape, src, from, alpha);
}

// Axis index in [0, ndim), negative counting from the end; throws when out of range.
int normalize_axis(int axis, int ndim);

}  // namespace vdit
