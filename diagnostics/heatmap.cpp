#include "diagnostics/heatmap.h"

#include <algorithm>
#include <cmath>

#include "autograd/check.h"

namespace vdit {

const std::array<Rgb, 9>& viridis_samples() {
  static const std::array<Rgb, 9> samples{{{68, 1, 84},
                                           {72, 40, 120},
                                           {62, 73, 137},
                                           {49, 104, 142},
                                           {38, 130, 142},
                                           {31, 158, 137},
                                           {53, 183, 121},
                                           {110, 206, 88},
                                           {253, 231, 37}}};
  return samples;
}

Rgb viridis(double t) {
  const std::array<Rgb, 9>& s = viridis_samples();
  const double x = std::clamp(t, 0.0, 1.0) * static_cast<double>(s.size() - 1);
  const size_t i = std::min(static_cast<size_t>(x), s.size() - 2);
  const double w = x - static_cast<double>(i);
  const auto mix = [w](uint8_t a, uint8_t b) { return static_cast<uint8_t>(std::lround(a + w * (b - a))); };
  return {mix(s[i].r, s[i + 1].r), mix(s[i].g, s[i + 1].g), mix(s[i].b, s[i + 1].b)};
}

RgbImage render_heatmap(const std::vector<double>& values, int64_t rows, int64_t cols, double lo, double hi) {
  VDIT_CHECK(rows > 0 && cols > 0 && values.size() == static_cast<size_t>(rows * cols),
             "heatmap: " << values.size() << " values for a " << rows << " x " << cols << " grid");
  VDIT_CHECK(hi > lo, "heatmap: empty colour range [" << lo << ", " << hi << "]");
  const int64_t cell = std::max<int64_t>(1, 240 / std::max(rows, cols));
  RgbImage image(cols * cell, rows * cell);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double v = values[static_cast<size_t>(r * cols + c)];
      const Rgb colour = std::isnan(v) ? kMissingColour : viridis((v - lo) / (hi - lo));
      for (int64_t y = r * cell; y < (r + 1) * cell; ++y)
        std::fill_n(&image.at(c * cell, y), cell, colour);
    }
  return image;
}

void write_heatmap(const std::string& path, const std::vector<double>& values, int64_t rows, int64_t cols,
                   double lo, double hi) {
  write_png(path, render_heatmap(values, rows, cols, lo, hi));
}

}  // namespace vdit
