#include "data/clip_generator.h"

#include <algorithm>
#include <cmath>

#include "autograd/check.h"

namespace vdit {

namespace {

const char* const kShapeNames[] = {"square", "circle", "triangle"};
const char* const kMotionNames[] = {"left", "right", "up", "down"};
constexpr double kTwoPi = 6.283185307179586;

double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * rng.uniform(); }

// A still texture, [3, H, W]: a grey base with a slight tint, two random low-frequency
// gratings and fine grain. It stays within about [0.2, 0.8] and within 0.1 of grey, so no
// pixel of it looks like a shape's saturated colour.
std::vector<float> draw_background(int64_t height, int64_t width, Rng& rng) {
  const double grey = uniform(rng, 0.4, 0.6);
  double tint[3];
  for (double& t : tint) t = uniform(rng, -0.04, 0.04);
  struct Grating {
    double fx, fy, phase;
  } gratings[2];
  for (Grating& g : gratings) {
    const double angle = uniform(rng, 0.0, kTwoPi), cycles = uniform(rng, 1.0, 3.0);
    g = {cycles * std::cos(angle) / width, cycles * std::sin(angle) / height, uniform(rng, 0.0, kTwoPi)};
  }
  std::vector<float> background(static_cast<size_t>(3 * height * width));
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      double luma = grey + uniform(rng, -0.03, 0.03);
      for (const Grating& g : gratings) luma += 0.06 * std::sin(kTwoPi * (g.fx * x + g.fy * y) + g.phase);
      for (int c = 0; c < 3; ++c) background[(c * height + y) * width + x] = static_cast<float>(luma + tint[c]);
    }
  }
  return background;
}

// Whether the point (dx, dy) from the shape's centre (y pointing down) lies inside a shape of
// half-size `s`. The triangle points up, its base as wide as the square.
bool inside(ClipShape shape, double dx, double dy, double s) {
  switch (shape) {
    case ClipShape::Square: return std::fabs(dx) <= s && std::fabs(dy) <= s;
    case ClipShape::Circle: return dx * dx + dy * dy <= s * s;
    case ClipShape::Triangle: return dy >= -s && dy <= s && std::fabs(dx) <= 0.5 * (dy + s);
  }
  return false;
}

// Blends the shape centred at (cx, cy) into one frame's planes [3, H, W], each pixel weighted by
// the fraction of its 4 x 4 sub-samples inside: smooth edges, so sub-pixel motion shows.
void draw_shape(const ClipScene& scene, double cx, double cy, double s, int64_t height, int64_t width, float* planes) {
  constexpr int kSub = 4;
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(cy - s) - 1), y1 = std::min<int64_t>(height, static_cast<int64_t>(cy + s) + 2);
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(cx - s) - 1), x1 = std::min<int64_t>(width, static_cast<int64_t>(cx + s) + 2);
  for (int64_t y = y0; y < y1; ++y) {
    for (int64_t x = x0; x < x1; ++x) {
      int hits = 0;
      for (int i = 0; i < kSub; ++i)
        for (int j = 0; j < kSub; ++j)
          hits += inside(scene.shape, x + (j + 0.5) / kSub - cx, y + (i + 0.5) / kSub - cy, s);
      const float cover = static_cast<float>(hits) / (kSub * kSub);
      for (int c = 0; c < 3; ++c) {
        float& v = planes[(c * height + y) * width + x];
        v += cover * (scene.colour.rgb[c] - v);
      }
    }
  }
}

}  // namespace

const std::vector<ClipColour>& clip_colours() {
  static const std::vector<ClipColour> colours = {
      {"red", {0.9f, 0.1f, 0.1f}},     {"green", {0.1f, 0.8f, 0.2f}},    {"blue", {0.15f, 0.25f, 0.95f}},
      {"yellow", {0.95f, 0.85f, 0.1f}}, {"magenta", {0.9f, 0.15f, 0.85f}}, {"cyan", {0.1f, 0.85f, 0.9f}}};
  return colours;
}

std::string caption_of(const ClipScene& scene) {
  return "a " + scene.colour.name + " " + kShapeNames[static_cast<int>(scene.shape)] + " moves " +
         kMotionNames[static_cast<int>(scene.motion)];
}

Clip draw_clip(const ClipScene& scene, int64_t frames, int64_t height, int64_t width, Rng& rng) {
  VDIT_CHECK(frames >= 1 && height >= 8 && width >= 8,
             "clips need at least 1 frame of 8x8, got " << frames << " frames of " << height << "x" << width);
  const std::vector<float> background = draw_background(height, width, rng);
  const double s = std::min(height, width) * uniform(rng, 0.15, 0.22);
  // The path runs along one axis, travelling 50 to 80% of the room the shape has there, and
  // keeps the shape inside the frame throughout.
  const bool horizontal = scene.motion == ClipMotion::Left || scene.motion == ClipMotion::Right;
  const double along_room = (horizontal ? width : height) - 2 * s, across_room = (horizontal ? height : width) - 2 * s;
  const double travel = along_room * uniform(rng, 0.5, 0.8);
  const double start = s + uniform(rng, 0.0, along_room - travel), across = s + uniform(rng, 0.0, across_room);
  const bool forward = scene.motion == ClipMotion::Right || scene.motion == ClipMotion::Down;  // towards larger x or y

  Clip clip{Tensor::empty({3, frames, height, width}), caption_of(scene)};
  const int64_t plane = height * width;
  std::vector<float> planes(background.size());
  for (int64_t f = 0; f < frames; ++f) {
    const double t = frames > 1 ? static_cast<double>(f) / (frames - 1) : 0.0;
    const double along = start + travel * (forward ? t : 1.0 - t);
    planes = background;
    draw_shape(scene, horizontal ? along : across, horizontal ? across : along, s, height, width, planes.data());
    for (int64_t c = 0; c < 3; ++c)
      std::copy_n(planes.data() + c * plane, plane, clip.frames.data() + (c * frames + f) * plane);
  }
  return clip;
}

std::vector<Clip> generate_clips(int64_t count, int64_t frames, int64_t height, int64_t width, uint64_t seed) {
  VDIT_CHECK(count >= 0, "clip count must not be negative, got " << count);
  Rng rng(seed);
  const std::vector<ClipColour>& colours = clip_colours();
  std::vector<Clip> clips;
  for (int64_t i = 0; i < count; ++i) {
    ClipScene scene;
    scene.shape = static_cast<ClipShape>(rng.below(std::size(kShapeNames)));
    scene.colour = colours[rng.below(colours.size())];
    scene.motion = static_cast<ClipMotion>(rng.below(std::size(kMotionNames)));
    clips.push_back(draw_clip(scene, frames, height, width, rng));
  }
  return clips;
}

}  // namespace vdit
