// vditkit create: a freshly initialised model of any family (for demos, tests and benchmarks),
// written as .h5 or safetensors.
#include <iostream>

#include "autograd/check.h"
#include "data/model_families.h"
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
      ("preset", po::value(&preset)->default_value("tiny"), "architecture: tiny, pixel-tiny, wan-1.3b, wan-14b, mochi-tiny, mochi-1, cogvideox-tiny or cogvideox-2b")
      ("layers", po::value(&layers)->default_value(0), "number of blocks (0: the preset's)")
      ("seed", po::value(&seed)->default_value(0), "initialisation seed")
      ("layout", po::value(&layout), "safetensors key layout: original or diffusers (default: the family's own; Mochi-1 and CogVideoX-2b have only diffusers')")
      ("bf16", po::bool_switch(&bf16), "store safetensors weights as bf16")
      ("head-std", po::value(&head_std)->default_value(head_std),
       "draw the output head's weight with this deviation (Wan's init zeroes it, so that no block gets a gradient)")
      ("out", po::value(&out)->required(), "output: FILE.h5, FILE.safetensors or a directory");
  const po::variables_map vm = parse_options(argc, argv, "vditkit create --out FILE [--preset tiny]", options);
  if (vm.empty()) return 0;
  if (!layout.empty() && layout != "original" && layout != "diffusers")
    throw UsageError("--layout must be original or diffusers");
  const std::unique_ptr<Model> model = create_family_model(preset, layers, seed);
  if (head_std > 0) {
    const auto head = model->parameters().find("head.head.weight");
    VDIT_CHECK(head != model->parameters().end(), "--head-std: a " << model->facts().family
                                                                   << " model's initialisation does not zero its head");
    Rng rng(seed + 1);
    model->set_parameters({{head->first, rng.normal_tensor(head->second.shape(), head_std)}});
  }
  save_family_model(out, *model, output_format(*model, out, layout), bf16);
  std::cout << "wrote " << out << " (" << preset << ", " << model->facts().num_blocks << " blocks, seed " << seed << ")\n";
  return 0;
}

const RegisterCommand reg("create", "write a freshly initialised model (a tiny or a released shape of any family)", run_create);

}  // namespace
}  // namespace vdit::cli
