#include "data/finite_check.h"

#include <cmath>

#include "autograd/check.h"

namespace vdit {

int64_t first_non_finite(const Tensor& t) {
  const Tensor values = t.to_f32();
  const float* p = values.data();
  for (int64_t i = 0, n = values.numel(); i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}

void check_finite(const Tensor& t, const std::string& where) {
  const int64_t flat = first_non_finite(t);
  if (flat < 0) return;
  Shape index(t.shape().size());
  int64_t rest = flat;
  for (int axis = static_cast<int>(t.ndim()) - 1; axis >= 0; --axis) {
    index[axis] = rest % t.size(axis);
    rest /= t.size(axis);
  }
  VDIT_FAIL(where << " holds " << t.to_f32().data()[flat] << " at index " << to_string(index));
}

}  // namespace vdit
