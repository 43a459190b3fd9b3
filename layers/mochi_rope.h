#pragma once
// Mochi's rotary embedding with learned frequencies (MOCHI.md, "Patches and positions"): token
// positions (frame, y, x), y and x cell midpoints of the grid rescaled to a 192 x 192 area and
// centred on 0; angle[tok, head, j] = sum_k pos[tok, k] * pos_frequencies[k, head, j]; adjacent
// pairs (z[2j], z[2j+1]) rotate by it.
#include <array>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

struct MochiRope {
  Tensor cos;  // [tokens, heads, hd / 2]; carry a gradient to pos_frequencies when it trains
  Tensor sin;
};

// (frame, y, x) per token of a (frames, rows, columns) grid, frame-major, [tokens * 3], float64.
std::vector<double> mochi_rope_positions(const std::array<int64_t, 3>& grid);
// The tables for `grid` from pos_frequencies [3, heads, hd/2]. Frozen frequencies: angles in
// float64 on the host, tables moved to the frequencies' device. Trained frequencies: angles and
// tables through differentiable ops (CPU only, autograd/ops_trig.h).
MochiRope mochi_rope(const Tensor& pos_frequencies, const std::array<int64_t, 3>& grid);
// x [B, tokens, heads, hd] rotated pair by pair.
Tensor apply_mochi_rope(const Tensor& x, const MochiRope& rope);

}  // namespace vdit
