#include "layers/rope3d.h"

#include <cmath>
#include <vector>

#include "autograd/check.h"

namespace vdit {

std::array<int64_t, 3> rope_axis_pairs(int64_t head_dim) {
  const int64_t c = head_dim / 2;
  return {c - 2 * (c / 3), c / 3, c / 3};
}

RopeTables make_rope_tables(const std::array<int64_t, 3>& grid, int64_t head_dim, double theta) {
  VDIT_CHECK(head_dim % 2 == 0 && head_dim >= 6, "RoPE needs an even head_dim >= 6, got " << head_dim);
  const std::array<int64_t, 3> pairs = rope_axis_pairs(head_dim);
  const int64_t c = head_dim / 2;
  // Per column: which axis drives it and its inverse frequency.
  std::vector<int> axis_of(c);
  std::vector<double> inv_freq(c);
  for (int64_t axis = 0, col = 0; axis < 3; ++axis)
    for (int64_t j = 0; j < pairs[axis]; ++j, ++col) {
      axis_of[col] = static_cast<int>(axis);
      inv_freq[col] = std::pow(theta, -static_cast<double>(2 * j) / static_cast<double>(2 * pairs[axis]));
    }
  const int64_t tokens = grid[0] * grid[1] * grid[2];
  RopeTables t{Tensor::empty({tokens, c}), Tensor::empty({tokens, c})};
  float* cs = t.cos.data();
  float* sn = t.sin.data();
  for (int64_t f = 0, n = 0; f < grid[0]; ++f)
    for (int64_t h = 0; h < grid[1]; ++h)
      for (int64_t w = 0; w < grid[2]; ++w, ++n) {
        const double pos[3] = {static_cast<double>(f), static_cast<double>(h), static_cast<double>(w)};
        for (int64_t col = 0; col < c; ++col) {
          const double angle = pos[axis_of[col]] * inv_freq[col];
          cs[n * c + col] = static_cast<float>(std::cos(angle));
          sn[n * c + col] = static_cast<float>(std::sin(angle));
        }
      }
  return t;
}

}  // namespace vdit
