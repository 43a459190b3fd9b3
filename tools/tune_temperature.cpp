// vditkit tune-temperature: learn only the softmax temperatures (log tau per head or per
// block), everything else frozen; the result is a small adapter tied to the base model.
#include "tools/training_command.h"

namespace vdit::cli {
namespace {

int run_tune_temperature(int argc, char** argv) {
  TrainingFlags flags;
  flags.options.tune_temperature = true;
  flags.options.lr.base_lr = 1e-2;  // a few hundred parameters tolerate a much larger step
  flags.options.adamw.weight_decay = 0.0;
  std::string granularity = "head";
  po::options_description options;
  options.add_options()
      ("blocks", po::value(&flags.options.temperature_blocks)->default_value("all"), "blocks that get temperatures: 3,19 or 10-12 or all")
      ("granularity", po::value(&granularity)->default_value(granularity), "head (one tau per head) or block (one per block)")
      ("cross-attn", po::bool_switch(&flags.options.cross_attn_temperature), "also learn cross-attention temperatures");
  flags.add_to(options);
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit tune-temperature --model M --data D --out DIR [options] | --resume CHECKPOINT", options);
  if (vm.empty()) return 0;
  flags.options.granularity = parse_temperature_granularity(granularity);
  flags.finish(vm);
  return run_training(flags.options, "tuning temperatures of blocks " + flags.options.temperature_blocks);
}

const RegisterCommand reg("tune-temperature", "learn per-head softmax temperatures only; writes an adapter",
                          run_tune_temperature);

}  // namespace
}  // namespace vdit::cli
