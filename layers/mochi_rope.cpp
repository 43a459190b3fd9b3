#include "layers/mochi_rope.h"

#include <cmath>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/ops_trig.h"

namespace vdit {

namespace {

constexpr double kRopeArea = 192.0 * 192.0;

}  // namespace

std::vector<double> mochi_rope_positions(const std::array<int64_t, 3>& grid) {
  const int64_t frames = grid[0], rows = grid[1], cols = grid[2];
  const double s = std::sqrt(kRopeArea / static_cast<double>(rows * cols));
  // Midpoint of cell i of n cells spanning [-n s / 2, n s / 2].
  auto centre = [s](int64_t i, int64_t n) { return s * (static_cast<double>(i) + 0.5 - static_cast<double>(n) / 2.0); };
  std::vector<double> pos;
  pos.reserve(static_cast<size_t>(frames * rows * cols * 3));
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t y = 0; y < rows; ++y)
      for (int64_t x = 0; x < cols; ++x)
        pos.insert(pos.end(), {static_cast<double>(f), centre(y, rows), centre(x, cols)});
  return pos;
}

MochiRope mochi_rope(const Tensor& freqs, const std::array<int64_t, 3>& grid) {
  VDIT_CHECK(freqs.ndim() == 3 && freqs.size(0) == 3,
             "pos_frequencies must be [3, heads, hd/2], got " << to_string(freqs.shape()));
  const std::vector<double> pos = mochi_rope_positions(grid);
  const int64_t tokens = static_cast<int64_t>(pos.size() / 3), columns = freqs.size(1) * freqs.size(2);
  const Shape table{tokens, freqs.size(1), freqs.size(2)};
  if (freqs.requires_grad()) {
    std::vector<float> pos32(pos.begin(), pos.end());
    const Tensor angles = matmul(Tensor::from_vector({tokens, 3}, pos32), reshape(freqs, {3, columns}));
    return {reshape(cos(angles), table), reshape(sin(angles), table)};
  }
  const std::vector<float> w = freqs.to_f32().to_vector();
  Tensor c = Tensor::empty(table), s = Tensor::empty(table);
  float* const cos_out = c.data();
  float* const sin_out = s.data();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < columns; ++j) {
      double angle = 0.0;
      for (int64_t k = 0; k < 3; ++k) angle += pos[t * 3 + k] * static_cast<double>(w[k * columns + j]);
      cos_out[t * columns + j] = static_cast<float>(std::cos(angle));
      sin_out[t * columns + j] = static_cast<float>(std::sin(angle));
    }
  return {c.to(freqs.device()), s.to(freqs.device())};
}

Tensor apply_mochi_rope(const Tensor& x, const MochiRope& rope) {
  const int64_t batch = x.size(0), tokens = x.size(1), heads = x.size(2), hd = x.size(3);
  VDIT_CHECK(rope.cos.shape() == (Shape{tokens, heads, hd / 2}),
             "Mochi RoPE tables " << to_string(rope.cos.shape()) << " do not fit " << to_string(x.shape()));
  if (!rope.cos.requires_grad()) {
    // Each (token, head) is a token of its own for the fused op: tables [tokens * heads, hd/2].
    const Tensor y = vdit::rope(reshape(x, {batch, tokens * heads, 1, hd}), reshape(rope.cos, {tokens * heads, hd / 2}),
                                reshape(rope.sin, {tokens * heads, hd / 2}));
    return reshape(y, x.shape());
  }
  // Trained tables: the rotation composed from differentiable ops.
  const std::vector<Tensor> pair = split(reshape(x, {batch, tokens, heads, hd / 2, 2}), 4, {1, 1});
  const Tensor c = reshape(rope.cos, {tokens, heads, hd / 2, 1}), s = reshape(rope.sin, {tokens, heads, hd / 2, 1});
  const Tensor re = sub(mul(pair[0], c), mul(pair[1], s)), im = add(mul(pair[0], s), mul(pair[1], c));
  return reshape(concat({re, im}, 4), x.shape());
}

}  // namespace vdit
