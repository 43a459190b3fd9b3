#pragma once
// Captioned training clips the demo draws itself: a coloured shape (square, circle, triangle)
// moving in a straight line (left, right, up, down) over a still, textured background, with a
// caption naming it, e.g. "a red square moves left". A text-conditioned model learns from them
// to draw the shape, colour and motion its prompt names. Deterministic in the seed.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace vdit {

enum class ClipShape { Square, Circle, Triangle };
enum class ClipMotion { Left, Right, Up, Down };

struct ClipColour {
  std::string name;
  float rgb[3] = {};
};
// The colours clips are drawn in: saturated, far from the background's muted tones.
const std::vector<ClipColour>& clip_colours();

struct ClipScene {
  ClipShape shape = ClipShape::Square;
  ClipColour colour;
  ClipMotion motion = ClipMotion::Right;
};
std::string caption_of(const ClipScene& scene);  // "a red square moves left"

struct Clip {
  Tensor frames;  // [3, F, H, W], RGB in [0, 1]
  std::string caption;
};

// Draws `scene` into `frames` frames of height x width; `rng` picks the background, the
// shape's size, its path (it stays inside the frame) and its speed.
Clip draw_clip(const ClipScene& scene, int64_t frames, int64_t height, int64_t width, Rng& rng);

// `count` clips of random scenes.
std::vector<Clip> generate_clips(int64_t count, int64_t frames, int64_t height, int64_t width, uint64_t seed);

}  // namespace vdit
