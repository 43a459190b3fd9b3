#include "diagnostics/png.h"

#include <zlib.h>

#include <fstream>

#include "autograd/check.h"

namespace vdit {

namespace {

void append_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

// A chunk is length, type, data, then the CRC-32 of type and data.
void append_chunk(std::string& out, const char (&type)[5], const std::string& data) {
  append_u32(out, static_cast<uint32_t>(data.size()));
  const std::string typed = std::string(type, 4) + data;
  out += typed;
  append_u32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(typed.data()),
                                              static_cast<uInt>(typed.size()))));
}

// Each scanline is its filter type byte (0: none) followed by the RGB bytes.
std::string scanlines(const RgbImage& image) {
  std::string raw;
  raw.reserve(static_cast<size_t>(image.height * (1 + 3 * image.width)));
  for (int64_t y = 0; y < image.height; ++y) {
    raw.push_back(0);
    for (int64_t x = 0; x < image.width; ++x) {
      const Rgb& p = image.at(x, y);
      raw.append({static_cast<char>(p.r), static_cast<char>(p.g), static_cast<char>(p.b)});
    }
  }
  return raw;
}

std::string deflate(const std::string& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string out(size, '\0');
  const int status = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                               reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()),
                               Z_DEFAULT_COMPRESSION);
  VDIT_CHECK(status == Z_OK, "PNG: zlib compress2 failed with status " << status);
  out.resize(size);
  return out;
}

}  // namespace

RgbImage::RgbImage(int64_t w, int64_t h, Rgb fill) : width(w), height(h) {
  VDIT_CHECK(w > 0 && h > 0, "an image needs a positive size; got " << w << " x " << h);
  pixels.assign(static_cast<size_t>(w * h), fill);
}

std::string encode_png(const RgbImage& image) {
  VDIT_CHECK(image.pixels.size() == static_cast<size_t>(image.width * image.height),
             "PNG: " << image.pixels.size() << " pixels for a " << image.width << " x " << image.height << " image");
  std::string header;
  append_u32(header, static_cast<uint32_t>(image.width));
  append_u32(header, static_cast<uint32_t>(image.height));
  // Bit depth 8, colour type 2 (RGB), compression 0, filter method 0, no interlace.
  header.append({8, 2, 0, 0, 0});

  std::string png = "\x89PNG\r\n\x1a\n";
  append_chunk(png, "IHDR", header);
  append_chunk(png, "IDAT", deflate(scanlines(image)));
  append_chunk(png, "IEND", "");
  return png;
}

void write_png(const std::string& path, const RgbImage& image) { write_file(path, encode_png(image)); }

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  VDIT_CHECK(out, path << ": cannot write");
}

}  // namespace vdit
