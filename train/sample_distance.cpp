#include "train/sample_distance.h"

#include <cmath>

#include "autograd/check.h"
#include "train/sampling.h"

namespace vdit {

namespace {

void check_pair(const Tensor& a, const Tensor& b) {
  VDIT_CHECK(a.shape() == b.shape(), "sample distance: shapes " << to_string(a.shape()) << " and "
                                                               << to_string(b.shape()) << " differ");
}

}  // namespace

double rms_distance(const Tensor& a, const Tensor& b) {
  check_pair(a, b);
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
  return x.empty() ? 0.0 : std::sqrt(sum / static_cast<double>(x.size()));
}

std::vector<double> frame_psnr(const Tensor& a, const Tensor& b) {
  check_pair(a, b);
  VDIT_CHECK(a.ndim() == 4 && a.size(0) == 3, "frame PSNR needs pixel samples [3, F, H, W], got " << to_string(a.shape()));
  const std::vector<float> x = sample_pixels(a).to_vector(), y = sample_pixels(b).to_vector();
  const int64_t frames = a.size(1), pixels = a.size(2) * a.size(3);
  std::vector<double> psnr(frames);
  for (int64_t f = 0; f < frames; ++f) {
    double sum = 0.0;
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t p = 0; p < pixels; ++p) {
        const size_t i = static_cast<size_t>((ch * frames + f) * pixels + p);
        sum += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
      }
    psnr[f] = -10.0 * std::log10(sum / static_cast<double>(3 * pixels));  // +inf when sum is 0
  }
  return psnr;
}

}  // namespace vdit
