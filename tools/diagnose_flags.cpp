#include "tools/diagnose_flags.h"

#include <sstream>

namespace vdit::cli {

void DiagnoseFlags::add_to(po::options_description& d) {
  d.add_options()
      ("timesteps", po::value(&timesteps_)->default_value(timesteps_), "probe noise levels sigma (before --shift), comma-separated")
      ("probe-samples", po::value(&options_.probe_samples)->default_value(options_.probe_samples), "probe set: the first N samples of --data")
      ("sparse-keep", po::value(&options_.sparse_keep)->default_value(options_.sparse_keep),
       "fraction of keys each query keeps in the sparsification test (0: skip the test)")
      ("sink-threshold", po::value(&options_.stats.sink_threshold)->default_value(options_.stats.sink_threshold),
       "a query collapses when its best key takes more than this share")
      ("diagnostic-checks", po::value(&checks_)->default_value(""), "thresholds file (JSON); default: the shipped limits");
}

void DiagnoseFlags::finish() {
  options_.sigmas.clear();
  std::stringstream in(timesteps_);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      const double sigma = std::stod(item, &used);
      if (used != item.size() || sigma <= 0.0 || sigma > 1.0) throw std::invalid_argument(item);
      options_.sigmas.push_back(sigma);
    } catch (const std::logic_error&) {
      throw UsageError("--timesteps: '" + item + "' is not a noise level in (0, 1]");
    }
  }
  if (options_.sigmas.empty()) throw UsageError("--timesteps: no noise level given");
}

}  // namespace vdit::cli
