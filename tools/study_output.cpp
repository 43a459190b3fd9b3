#include "tools/study_output.h"

#include <cmath>
#include <cstdio>
#include <numeric>

#include "data/hdf5_file.h"
#include "data/video_io.h"
#include "diagnostics/html_chart.h"
#include "tools/sampling_flags.h"

namespace vdit::cli {

std::vector<std::string> write_study_samples(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& samples,
                                             int fps) {
  std::vector<std::string> written{dir + "/samples.h5"};
  write_hdf5_atomically(written[0], [&](Hdf5File& file) {
    for (const auto& [name, sample] : samples) file.write(name, sample);
  });
  for (const auto& [name, sample] : samples) {
    if (sample.size(0) != 3 || !video_io_available() || sample.size(2) % 2 || sample.size(3) % 2) continue;
    written.push_back(dir + "/" + name + ".mp4");
    write_sample(written.back(), sample, fps);
  }
  return written;
}

std::string html_page(const std::string& title, const std::string& body) {
  return "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         "</title><style>body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:right}"
         "td:first-child,td:nth-child(2){text-align:left}</style></head><body>\n" +
         body + "</body></html>\n";
}

double mean_of(const std::vector<double>& values) {
  return values.empty() ? NAN : std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

std::string fixed(double value, int digits) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

}  // namespace vdit::cli
