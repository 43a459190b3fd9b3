// vditkit create: a freshly initialised Wan2.1-architecture model (for demos, tests and
// benchmarks), written as .h5 or safetensors.
#include <iostream>

#include "data/model_io.h"
#include "layers/init.h"
#include "tools/command.h"

namespace vdit::cli {
namespace {

int run_create(int argc, char** argv) {
  po::options_description options;
  std::string preset, out, layout;
  uint64_t seed = 0;
  int64_t layers = 0;
  bool bf16 = false;
  float head_std = 0.0f;
  options.add_options()
      ("preset", po::value(&preset)->default_value("tiny"), "architecture: tiny, pixel-tiny, wan-1.3b or wan-14b")
      ("layers", po::value(&layers)->default_value(0), "number of blocks (0: the preset's)")
      ("seed", po::value(&seed)->default_value(0), "initialisation seed")
      ("layout", po::value(&layout)->default_value("original"), "safetensors key layout: original or diffusers")
      ("bf16", po::bool_switch(&bf16), "store safetensors weights as bf16")
      ("head-std", po::value(&head_std)->default_value(head_std),
       "draw the output head's weight with this deviation (Wan's init zeroes it, so that no block gets a gradient)")
      ("out", po::value(&out)->required(), "output: FILE.h5, FILE.safetensors or a directory");
  const po::variables_map vm = parse_options(argc, argv, "vditkit create --out FILE [--preset tiny]", options);
  if (vm.empty()) return 0;
  VDiTConfig config = VDiTConfig::preset(preset);
  if (layers > 0) config.num_layers = layers;
  if (layout != "original" && layout != "diffusers") throw UsageError("--layout must be original or diffusers");
  ModelFormat format = model_format_for(out);
  if (format != ModelFormat::H5 && layout == "diffusers") format = ModelFormat::SafetensorsDiffusers;
  ParameterMap params = init_wan_parameters(config, seed);
  if (head_std > 0) {
    Rng rng(seed + 1);
    params["head.head.weight"] = rng.normal_tensor(params["head.head.weight"].shape(), head_std);
  }
  save_model(out, config, params, format, bf16);
  std::cout << "wrote " << out << " (" << preset << ", " << config.num_layers << " blocks, seed " << seed << ")\n";
  return 0;
}

const RegisterCommand reg("create", "write a freshly initialised model (tiny or Wan2.1-shaped)", run_create);

}  // namespace
}  // namespace vdit::cli
