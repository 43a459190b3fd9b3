#pragma once
// Video in and out through FFmpeg (libavformat, libavcodec, libswscale). Frames are float32
// [3, F, H, W], RGB in [0, 1], the layout of a pixel-space VDiT's latents (before scaling to
// [-1, 1]). Every error names the file.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

// False in a build configured with -DVDITKIT_VIDEO=OFF, where every function below fails with
// an error naming that option.
bool video_io_available();

// Decodes `frames` frames of the first video stream of any file FFmpeg reads, from the start,
// keeping every `stride`-th frame. Each frame is resized so that its shorter side (relative to
// the target's aspect) covers height x width, then centre-cropped to it. Errors (missing,
// corrupt, no video stream, fewer frames than asked) name the file.
Tensor decode_video(const std::string& path, int64_t frames, int64_t height, int64_t width, int64_t stride = 1);

// Writes frames [3, F, H, W] in [0, 1] as an MP4 at `fps`: H.264 through libx264 when this
// FFmpeg has it, else FFmpeg's native "mpeg4" (MPEG-4 part 2) encoder, both in yuv420p, so H
// and W must be even (an error otherwise). The file appears complete or not at all.
void encode_mp4(const std::string& path, const Tensor& frames, int fps = 8);

// Writes one PNG per frame, prefix_000.png, prefix_001.png, ... (libavcodec's PNG encoder),
// and returns their paths.
std::vector<std::string> encode_pngs(const std::string& prefix, const Tensor& frames);

}  // namespace vdit
