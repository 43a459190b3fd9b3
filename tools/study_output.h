#pragma once
// What every study writes besides its own results: the samples it drew, for looking at them.
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace vdit::cli {

// DIR/samples.h5 with one dataset per (name, sample [C, F, H, W]); for pixel-space samples also
// DIR/NAME.mp4 each (when this build has video I/O and H and W are even, as MP4 needs).
// Returns the files written, samples.h5 first.
std::vector<std::string> write_study_samples(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& samples,
                                             int fps);

// A whole HTML page around `body` (the reports' shared style: numbers right-aligned).
std::string html_page(const std::string& title, const std::string& body);

// The mean of `values`; NaN when empty.
double mean_of(const std::vector<double>& values);

// "12.3" for a finite value, "inf" / "nan" otherwise; `digits` after the point.
std::string fixed(double value, int digits);

}  // namespace vdit::cli
