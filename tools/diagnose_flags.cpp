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

std::vector<double> parse_unit_fractions(const std::string& text, const std::string& flag, const std::string& what) {
  std::vector<double> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      const double value = std::stod(item, &used);
      if (used != item.size() || !(value > 0.0 && value <= 1.0)) throw std::invalid_argument(item);
      values.push_back(value);
    } catch (const std::logic_error&) {
      throw UsageError(flag + ": '" + item + "' is not " + what + " in (0, 1]");
    }
  }
  if (values.empty()) throw UsageError(flag + ": no value given");
  return values;
}

void DiagnoseFlags::finish() { options_.sigmas = parse_unit_fractions(timesteps_, "--timesteps", "a noise level"); }

}  // namespace vdit::cli
