// vditkit make-data: a synthetic latent dataset (learnable patterns tied to their text
// context) for demos, tests and benchmarks, shaped for a model.
#include <iostream>

#include "data/latent_dataset.h"
#include "data/model_families.h"
#include "data/synthetic_data.h"
#include "tools/command.h"

namespace vdit::cli {
namespace {

int run_make_data(int argc, char** argv) {
  SyntheticDataSpec spec;
  std::string preset = "tiny", out;
  po::options_description options;
  options.add_options()
      ("preset", po::value(&preset)->default_value(preset), "model the data is for (channels, text width): any create preset")
      ("samples", po::value(&spec.samples)->default_value(spec.samples), "number of samples")
      ("frames", po::value(&spec.frames)->default_value(spec.frames), "latent frames F")
      ("height", po::value(&spec.height)->default_value(spec.height), "latent height H")
      ("width", po::value(&spec.width)->default_value(spec.width), "latent width W")
      ("context-len", po::value(&spec.context_len)->default_value(spec.context_len), "text tokens L per sample")
      ("seed", po::value(&spec.seed)->default_value(spec.seed), "generator seed")
      ("out", po::value(&out)->required(), "output .h5");
  const po::variables_map vm = parse_options(argc, argv, "vditkit make-data --out D.h5 [--preset tiny]", options);
  if (vm.empty()) return 0;
  const PresetDataShape shape = preset_data_shape(preset);
  spec.channels = shape.channels;
  spec.text_dim = shape.text_dim;
  write_latent_dataset(out, make_synthetic_samples(spec));
  std::cout << "wrote " << spec.samples << " samples of latents [" << spec.channels << ", " << spec.frames << ", "
            << spec.height << ", " << spec.width << "] and context [" << spec.context_len << ", " << spec.text_dim
            << "] to " << out << "\n";
  return 0;
}

const RegisterCommand reg("make-data", "write a synthetic latent dataset for demos and tests", run_make_data);

}  // namespace
}  // namespace vdit::cli
