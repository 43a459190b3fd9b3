// vditkit convert: between safetensors (original or diffusers layout) and vditkit .h5.
#include <iostream>

#include "data/model_families.h"
#include "tools/command.h"

namespace vdit::cli {
namespace {

int run_convert(int argc, char** argv) {
  po::options_description options;
  std::string in, out, config, layout;
  bool bf16 = false;
  options.add_options()
      ("in", po::value(&in)->required(), "source model (safetensors file, index, directory or .h5)")
      ("out", po::value(&out)->required(), "FILE.h5, FILE.safetensors or a directory (safetensors + config.json)")
      ("config", po::value(&config), "config.json to use instead of the one beside the source")
      ("layout", po::value(&layout), "safetensors key layout: original or diffusers (default: the family's own; Mochi-1 and CogVideoX-2b have only diffusers')")
      ("bf16", po::bool_switch(&bf16), "write safetensors weights as bf16");
  po::positional_options_description positional;
  positional.add("in", 1).add("out", 1);
  const po::variables_map vm = parse_options(argc, argv, "vditkit convert IN OUT [--layout original|diffusers]", options, positional);
  if (vm.empty()) return 0;
  if (!layout.empty() && layout != "original" && layout != "diffusers")
    throw UsageError("--layout must be original or diffusers");
  LoadOptions load;
  load.config_path = config;
  const LoadedFamilyModel m = load_family_model(in, load);
  save_family_model(out, *m.model, output_format(*m.model, out, layout), bf16);
  std::cout << "converted " << in << " (" << m.model->facts().family << ", " << m.format << ", "
            << m.model->parameters().size() << " tensors) to " << out << "\n";
  return 0;
}

const RegisterCommand reg("convert", "convert a model between safetensors (either layout) and .h5", run_convert);

}  // namespace
}  // namespace vdit::cli
