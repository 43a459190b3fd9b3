#pragma once
// What `retrain` and `tune-temperature` share: the flags of a training run (objective, data,
// optimizer, checkpoints, teacher), the resume logic, and running it with a summary.
#include "tools/command.h"
#include "tools/device_flag.h"
#include "tools/diagnose_flags.h"
#include "train/retrain_options.h"

namespace vdit::cli {

// Owns the option values while the command line is parsed.
class TrainingFlags {
 public:
  // Adds every shared flag, with the defaults in `options`.
  void add_to(po::options_description& description);
  // Completes `options` from the parsed flags; with --resume, the stored run's options are
  // taken and flags given now must agree with them (--steps may extend the run).
  void finish(const po::variables_map& vm);
  RetrainOptions options;

 private:
  DiagnoseFlags probe_{options.diagnose, options.diagnostic_checks};
  DeviceFlag device_;
  bool no_diagnostics_ = false;
  std::string sampling_ = "uniform", weighting_ = "none", decay_ = "cosine";
};

// Runs the training and prints what it did; `what` names it ("retraining 3", ...). Under
// `mpirun -np N` (N > 1) it runs as one rank of a data-parallel run; an error on any rank
// stops every rank with a message naming it.
int run_training(const RetrainOptions& options, const std::string& what);

}  // namespace vdit::cli
