#pragma once
// A small PNG writer for the diagnostics pictures: 8-bit RGB, no interlace, every row stored
// with filter 0 and deflated by zlib (PNG spec, sections 11.2.2 IHDR and 10 Compression).
#include <cstdint>
#include <string>
#include <vector>

namespace vdit {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// Pixels row-major from the top-left corner.
struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<Rgb> pixels;
  RgbImage(int64_t w, int64_t h, Rgb fill = {});
  Rgb& at(int64_t x, int64_t y) { return pixels[static_cast<size_t>(y * width + x)]; }
  const Rgb& at(int64_t x, int64_t y) const { return pixels[static_cast<size_t>(y * width + x)]; }
};

// The bytes of a PNG file holding `image`.
std::string encode_png(const RgbImage& image);

// Writes `image` to `path`; errors name the path.
void write_png(const std::string& path, const RgbImage& image);

// Writes `bytes` to `path` (the report's PNG, JSON and HTML files all go through here), an
// error naming the path if that fails.
void write_file(const std::string& path, const std::string& bytes);

}  // namespace vdit
