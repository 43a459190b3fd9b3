#pragma once
// Wan's 3D rotary position embedding tables (WAN21.md, "3D RoPE"): each head's hd/2 adjacent
// pairs are split among frame, height and width, and pair j of an axis owning D real dims
// turns by pos * 10000^(-2j/D). Angles are computed in float64, stored as float32.
#include <array>
#include <cstdint>

#include "autograd/tensor.h"

namespace vdit {

struct RopeTables {
  Tensor cos;  // [tokens, head_dim / 2]
  Tensor sin;
};

// Pairs owned by (frame, height, width) for a head of `head_dim`: c - 2(c/3), c/3, c/3.
std::array<int64_t, 3> rope_axis_pairs(int64_t head_dim);
// Tables for a (frames, height, width) token grid in frame-major order, w fastest.
RopeTables make_rope_tables(const std::array<int64_t, 3>& grid, int64_t head_dim,
                            double theta = 10000.0);

}  // namespace vdit
