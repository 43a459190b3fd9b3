// vditkit sample: generate with a model by the flow-matching Euler sampler with
// classifier-free guidance; MP4 for pixel-space models, latents .h5 otherwise.
#include <algorithm>
#include <iostream>

#include "autograd/check.h"
#include "data/finite_check.h"
#include "data/hdf5_file.h"
#include "data/text_embedding_table.h"
#include "data/video_io.h"
#include "tools/command.h"
#include "tools/device_flag.h"
#include "train/progress.h"
#include "train/sampling.h"
#include "train/trainer.h"

namespace vdit::cli {
namespace {

int run_sample(int argc, char** argv) {
  std::string model_path, config, adapter, set_temperature, prompt, context_path, size = "32x32", out;
  int64_t frames = 4;
  int fps = 8;
  SamplingOptions o;
  po::options_description options;
  options.add_options()
      ("model", po::value(&model_path)->required(), "safetensors file, index, directory or vditkit .h5")
      ("config", po::value(&config)->default_value(""), "config.json overriding the one beside the weights")
      ("adapter", po::value(&adapter)->default_value(""), "temperature adapter to apply")
      ("set-temperature", po::value(&set_temperature)->default_value(""), "fixed self-attention temperatures BLOCKS:VALUE[;...]")
      ("prompt", po::value(&prompt)->default_value(""), "text, embedded by the stand-in word table (as make-dataset does)")
      ("context", po::value(&context_path)->default_value(""), "HDF5 with `context` [L, text_dim] (a real text encoder's output)")
      ("frames", po::value(&frames)->default_value(frames), "latent frames F")
      ("size", po::value(&size)->default_value(size), "latent size HxW")
      ("steps", po::value(&o.steps)->default_value(o.steps), "Euler steps from sigma 1 to 0")
      ("guidance", po::value(&o.guidance)->default_value(o.guidance), "classifier-free guidance scale (1: none)")
      ("shift", po::value(&o.shift)->default_value(o.shift), "noise-schedule shift")
      ("seed", po::value(&o.seed)->default_value(o.seed), "noise seed")
      ("fps", po::value(&fps)->default_value(fps), "frames per second of the MP4")
      ("out", po::value(&out)->required(), "video.mp4 (pixel-space models) or latents.h5");
  DeviceFlag device_flag;
  device_flag.add_to(options);
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit sample --model M [--prompt TEXT | --context C.h5] --out video.mp4|latents.h5 [--device cuda]",
      options);
  if (vm.empty()) return 0;
  const Device device = device_flag.device();
  if (!prompt.empty() && !context_path.empty()) throw UsageError("give at most one of --prompt and --context");
  const FrameSize latent_size = parse_size(size);

  const std::unique_ptr<VDiT> model = load_run_model(model_path, config, device.is_cuda(), adapter, set_temperature);
  model->to(device);
  const VDiTConfig& c = model->config();
  const bool video = out.ends_with(".mp4");
  VDIT_CHECK(!video || c.in_dim == 3, out << ": MP4 needs a pixel-space model (in_dim 3); this one has in_dim "
                                          << c.in_dim << ": write latents to a .h5 instead");
  Tensor context;
  if (!prompt.empty()) context = embed_caption(prompt, c.text_dim, c.text_len);
  if (!context_path.empty()) {
    context = Hdf5File(context_path, Hdf5File::Mode::Read).read("context");
    check_finite(context, context_path + ": dataset 'context'");
  }

  ProgressLine line("sample", o.steps);
  const Tensor x = sample(*model, {c.in_dim, frames, latent_size.height, latent_size.width}, context, o,
                          [&](int64_t step, int64_t) { line.update(step, ""); });
  line.finish();
  if (video) {
    Tensor pixels = Tensor::empty(x.shape());  // [-1, 1] -> [0, 1]
    for (int64_t i = 0; i < x.numel(); ++i) pixels.data()[i] = std::clamp((x.data()[i] + 1.0f) * 0.5f, 0.0f, 1.0f);
    encode_mp4(out, pixels, fps);
  } else {
    write_hdf5_atomically(out, [&](Hdf5File& file) { file.write("latents", x); });
  }
  std::cout << "wrote " << out << " (" << to_string(x.shape()) << (prompt.empty() ? "" : ", \"" + prompt + "\"") << ")\n";
  return 0;
}

const RegisterCommand reg("sample", "generate a video (or latents) with the flow-matching sampler", run_sample);

}  // namespace
}  // namespace vdit::cli
