#pragma once
// Value grids as colour pictures. The colormap is viridis: perceptually uniform, ordered from
// dark to light (so it survives grey printing) and readable with the common colour-vision
// deficiencies, which a rainbow map is not.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "diagnostics/png.h"

namespace vdit {

// Nine evenly spaced samples of matplotlib's viridis table, from t = 0 to t = 1.
const std::array<Rgb, 9>& viridis_samples();

// The colour of t in [0, 1] (clamped), interpolated linearly between the samples.
Rgb viridis(double t);

// Cells whose value is NaN (not measured) are drawn in this grey, which viridis never uses.
inline constexpr Rgb kMissingColour{128, 128, 128};

// `values` row-major [rows, cols] coloured on [lo, hi]; each cell a square of pixels, sized so
// the longer side of the picture is about 240 pixels (at least one pixel per cell).
RgbImage render_heatmap(const std::vector<double>& values, int64_t rows, int64_t cols, double lo, double hi);

void write_heatmap(const std::string& path, const std::vector<double>& values, int64_t rows, int64_t cols,
                   double lo, double hi);

}  // namespace vdit
