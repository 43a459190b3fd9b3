#pragma once
// The flags `sample` and the studies share (issue 16, item 6): the model, the prompt, the
// clip's shape, the sampler's settings and the device, with one meaning everywhere.
#include <memory>

#include "layers/model.h"
#include "tools/device_flag.h"
#include "train/transfer_sampling.h"

namespace vdit::cli {

struct SamplingFlags {
  std::string model, config, adapter, set_temperature, size = "32x32";
  int64_t frames = 4;
  SamplingOptions options;
  DeviceFlag device;

  void add_to(po::options_description& description);
  // Loads --model (with --config, --adapter, --set-temperature) onto --device.
  std::unique_ptr<Model> load_model() const;
  // [in_dim, --frames, H, W] of --size.
  Shape latent_shape(const ModelFacts& facts) const;
  // "frames F, size HxW, steps N, guidance G, shift S, seed K" for a report of a clip of `shape`.
  std::string settings_text(const Shape& shape) const;

 private:
  FrameSize latent_size() const;  // UsageError for a bad --size or --frames
};

// --transfer-steps: "all", "A-B" or "A", steps counted from 1 as the progress line counts them,
// within 1..steps; UsageError otherwise.
TransferSteps parse_transfer_steps(const std::string& text, int64_t steps);

// Writes a sample [C, F, H, W]: an MP4 of its pixels (sample_pixels) for a path ending in .mp4,
// else an HDF5 file with `latents`.
void write_sample(const std::string& path, const Tensor& sample, int fps);
// An MP4 needs a pixel-space model (in_dim 3): checked before sampling, the error names the path.
void check_sample_path(const std::string& path, int64_t in_dim);

// A prompt's context [L, text_dim] (the stand-in word table, as make-dataset embeds captions).
Tensor prompt_context(const std::string& prompt, const ModelFacts& facts);

}  // namespace vdit::cli
