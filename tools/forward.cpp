// vditkit forward: one denoiser evaluation of a model on latents, a timestep and a text
// context read from an HDF5 file.
#include <iostream>

#include "autograd/check.h"
#include "autograd/tape.h"
#include "data/finite_check.h"
#include "data/hdf5_file.h"
#include "data/latent_dataset.h"
#include "train/trainer.h"
#include "tools/command.h"
#include "tools/device_flag.h"

namespace vdit::cli {
namespace {

int run_forward(int argc, char** argv) {
  po::options_description options;
  std::string model_path, input, output, adapter, config, set_temperature;
  bool frozen_bf16 = false, allow_nonfinite = false;
  options.add_options()
      ("model", po::value(&model_path)->required(), "safetensors file, index, directory or vditkit .h5")
      ("input", po::value(&input)->required(),
       "HDF5 with latents [C,F,H,W], timestep (0..1000), context [L,text_dim], optional context_mask [L]")
      ("output", po::value(&output)->required(), "HDF5 to write velocity [C_out,F,H,W] into")
      ("adapter", po::value(&adapter)->default_value(""), "temperature adapter (from tune-temperature) to apply")
      ("set-temperature", po::value(&set_temperature)->default_value(""),
       "fixed self-attention temperatures BLOCKS:VALUE[;...], e.g. 0-3:1.5 (no training)")
      ("config", po::value(&config), "config.json to use instead of the one beside the weights")
      ("frozen-bf16", po::bool_switch(&frozen_bf16), "hold the weights as bf16 (half the memory)")
      ("allow-nonfinite", po::bool_switch(&allow_nonfinite),
       "let NaN or infinite latents and context through (experiments); by default they are an error");
  DeviceFlag device_flag;
  device_flag.add_to(options);
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit forward --model M --input IN.h5 --output OUT.h5 [--adapter A.h5] [--device cuda]", options);
  if (vm.empty()) return 0;
  const Device device = device_flag.device();

  const std::unique_ptr<Model> loaded =
      load_run_model(model_path, config, frozen_bf16 || device.is_cuda(), adapter, set_temperature);
  loaded->to(device);
  const Model& model = *loaded;
  const ModelFacts c = model.facts();

  const Hdf5File in(input, Hdf5File::Mode::Read);
  const Tensor latents = in.read("latents");
  const double t = in.read_number("timestep");
  const Tensor context = in.read("context");
  const Tensor mask = read_context_mask(in, "/", context.size(0));
  if (!allow_nonfinite) {
    check_finite(latents, input + ": dataset 'latents'");
    check_finite(context, input + ": dataset 'context'");
  }
  VDIT_CHECK(latents.ndim() == 4 && latents.size(0) == c.in_channels,
             input << ": latents must be [" << c.in_channels << ", F, H, W], got " << to_string(latents.shape()));
  for (int a = 0; a < 3; ++a)
    VDIT_CHECK(latents.size(1 + a) % c.patch[a] == 0,
               input << ": latents " << (a == 0 ? "frames" : a == 1 ? "height" : "width") << " "
                     << latents.size(1 + a) << " is not divisible by the patch size " << c.patch[a]);
  VDIT_CHECK(t >= 0.0 && t <= 1000.0, input << ": timestep " << t << " is outside [0, 1000]");
  VDIT_CHECK(context.ndim() == 2 && context.size(1) == c.text_dim,
             input << ": context must be [L, " << c.text_dim << "], got " << to_string(context.shape()));
  VDIT_CHECK(context.size(0) <= c.text_len,
             input << ": context has " << context.size(0) << " tokens, more than text_len " << c.text_len);
  VDIT_CHECK(!c.exact_text_len || context.size(0) == c.text_len,
             input << ": context has " << context.size(0) << " rows; a " << c.family << " model needs exactly " << c.text_len);

  NoGradScope no_grad;
  Shape batched = latents.shape();
  batched.insert(batched.begin(), 1);
  const ModelInputs inputs{reshape(latents, batched).to(device), {t},
                           reshape(context, {1, context.size(0), c.text_dim}).to(device),
                           mask.defined() ? reshape(mask, {1, context.size(0)}).to(device) : Tensor()};
  const Tensor velocity = model.velocity(inputs, nullptr).to(Device::cpu());
  Shape out_shape = velocity.shape();
  out_shape.erase(out_shape.begin());
  write_hdf5_atomically(output, [&](Hdf5File& out) { out.write("velocity", reshape(velocity, out_shape)); });
  std::cout << "wrote velocity " << to_string(out_shape) << " to " << output << "\n";
  return 0;
}

const RegisterCommand reg("forward", "one denoiser evaluation: latents, timestep, context -> velocity", run_forward);

}  // namespace
}  // namespace vdit::cli
