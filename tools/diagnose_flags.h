#pragma once
// The probe-set flags `diagnose`, `retrain` and `tune-temperature` share.
#include "diagnostics/diagnose.h"
#include "tools/command.h"

namespace vdit::cli {

// A comma-separated list of numbers in (0, 1] (noise levels, keep fractions); UsageError naming
// `flag`, the item and `what` it should be otherwise.
std::vector<double> parse_unit_fractions(const std::string& text, const std::string& flag, const std::string& what);

class DiagnoseFlags {
 public:
  explicit DiagnoseFlags(DiagnoseOptions& options, std::string& checks) : options_(options), checks_(checks) {}
  void add_to(po::options_description& description);
  // Parses --timesteps into options.sigmas (before any shift).
  void finish();

 private:
  DiagnoseOptions& options_;
  std::string& checks_;
  std::string timesteps_ = "0.9,0.5,0.1";
};

}  // namespace vdit::cli
