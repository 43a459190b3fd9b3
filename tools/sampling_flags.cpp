#include "tools/sampling_flags.h"

#include <regex>

#include "autograd/check.h"
#include "data/hdf5_file.h"
#include "data/text_embedding_table.h"
#include "data/video_io.h"
#include "tools/study_output.h"
#include "train/trainer.h"

namespace vdit::cli {

void SamplingFlags::add_to(po::options_description& d) {
  d.add_options()
      ("model", po::value(&model)->required(), "safetensors file, index, directory or vditkit .h5")
      ("config", po::value(&config)->default_value(""), "config.json overriding the one beside the weights")
      ("adapter", po::value(&adapter)->default_value(""), "temperature adapter to apply")
      ("set-temperature", po::value(&set_temperature)->default_value(""), "fixed self-attention temperatures BLOCKS:VALUE[;...]")
      ("frames", po::value(&frames)->default_value(frames), "latent frames F")
      ("size", po::value(&size)->default_value(size), "latent size HxW")
      ("steps", po::value(&options.steps)->default_value(options.steps), "Euler steps from sigma 1 to 0")
      ("guidance", po::value(&options.guidance)->default_value(options.guidance), "classifier-free guidance scale (1: none)")
      ("shift", po::value(&options.shift)->default_value(options.shift), "noise-schedule shift")
      ("seed", po::value(&options.seed)->default_value(options.seed), "noise seed");
  device.add_to(d);
}

std::unique_ptr<Model> SamplingFlags::load_model() const {
  latent_size();  // a bad --size or --frames is reported before a large model loads
  const Device where = device.device();
  std::unique_ptr<Model> m = load_run_model(model, config, where.is_cuda(), adapter, set_temperature);
  m->to(where);
  return m;
}

FrameSize SamplingFlags::latent_size() const {
  if (frames < 1) throw UsageError("--frames must be at least 1, got " + std::to_string(frames));
  return parse_size(size);
}

Shape SamplingFlags::latent_shape(const ModelFacts& c) const {
  const FrameSize s = latent_size();
  return {c.in_channels, frames, s.height, s.width};
}

std::string SamplingFlags::settings_text(const Shape& shape) const {
  return "frames " + std::to_string(shape[1]) + ", size " + size + ", steps " + std::to_string(options.steps) +
         ", guidance " + fixed(options.guidance, 2) + ", shift " + fixed(options.shift, 2) + ", seed " +
         std::to_string(options.seed);
}

TransferSteps parse_transfer_steps(const std::string& text, int64_t steps) {
  if (text == "all") return {};
  std::smatch m;
  if (!std::regex_match(text, m, std::regex("(\\d{1,9})(?:-(\\d{1,9}))?")))
    throw UsageError("--transfer-steps must be all, A-B or A (steps from 1), got '" + text + "'");
  const int64_t first = std::stoll(m[1]), last = m[2].matched ? std::stoll(m[2]) : first;
  if (first < 1 || first > last || last > steps)
    throw UsageError("--transfer-steps " + text + ": needs 1 <= A <= B <= --steps (" + std::to_string(steps) + ")");
  return {first - 1, last - 1};
}

void check_sample_path(const std::string& path, int64_t in_dim) {
  VDIT_CHECK(!path.ends_with(".mp4") || in_dim == 3, path << ": MP4 needs a pixel-space model (in_dim 3); this one has in_dim "
                                                          << in_dim << ": write latents to a .h5 instead");
}

void write_sample(const std::string& path, const Tensor& sample, int fps) {
  check_sample_path(path, sample.size(0));
  if (path.ends_with(".mp4")) {
    encode_mp4(path, sample_pixels(sample), fps);
  } else {
    write_hdf5_atomically(path, [&](Hdf5File& file) { file.write("latents", sample); });
  }
}

Tensor prompt_context(const std::string& prompt, const ModelFacts& c) { return embed_caption(prompt, c.text_dim, c.text_len); }

}  // namespace vdit::cli
