// vditkit retrain: freeze a pretrained model, reinitialise the chosen layers and retrain them
// with the flow-matching loss; checkpoints, a JSON-lines log and an exact resume.
#include "tools/training_command.h"

namespace vdit::cli {
namespace {

int run_retrain(int argc, char** argv) {
  TrainingFlags flags;
  std::string init = "reinit";
  po::options_description options;
  options.add_options()
      ("layers", po::value(&flags.options.layers)->default_value(flags.options.layers),
       "what to train: blocks (3,19 or 10-12), sub-modules (3.self_attn, 3.cross_attn, 3.ffn, 3.modulation, "
       "3.norms), head, embeddings, all")
      ("init", po::value(&init)->default_value(init), "reinit (fresh weights, Wan's scheme) or keep (fine-tune)");
  flags.add_to(options);
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit retrain --model M --data D --layers SPEC --out DIR [options] | --resume CHECKPOINT", options);
  if (vm.empty()) return 0;
  flags.options.init = parse_init_mode(init);
  flags.finish(vm);
  return run_training(flags.options, "retraining " + flags.options.layers);
}

const RegisterCommand reg("retrain", "freeze a model, reinitialise chosen layers and retrain them", run_retrain);

}  // namespace
}  // namespace vdit::cli
