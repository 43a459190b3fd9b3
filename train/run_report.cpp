#include "train/run_report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/video_io.h"
#include "train/sampling.h"

namespace vdit {

std::string loss_curve_html(const std::string& log_path) {
  std::vector<std::pair<double, double>> points;  // (step, smoothed loss)
  std::ifstream in(log_path);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_object() && record.contains("smoothed_loss"))
      points.emplace_back(record["step"].get<double>(), record["smoothed_loss"].get<double>());
  }
  if (points.size() < 2) return "";
  double lo = points[0].second, hi = lo;
  for (const auto& p : points) lo = std::min(lo, p.second), hi = std::max(hi, p.second);
  const double first = points.front().first, last = points.back().first, span = std::max(hi - lo, 1e-12);
  constexpr double kWidth = 600, kHeight = 200;
  std::string polyline;
  char xy[64];
  for (const auto& [step, loss] : points) {
    std::snprintf(xy, sizeof xy, "%.1f,%.1f ", (step - first) / std::max(last - first, 1.0) * kWidth,
                  (hi - loss) / span * kHeight);
    polyline += xy;
  }
  char caption[160];
  std::snprintf(caption, sizeof caption, "smoothed flow-matching loss, steps %.0f to %.0f (%.4g to %.4g; top %.4g, bottom %.4g)",
                first, last, points.front().second, points.back().second, hi, lo);
  return "<h2>Training loss</h2>\n<figure><svg width=\"600\" height=\"200\" style=\"border:1px solid #999\" "
         "viewBox=\"0 0 600 200\"><polyline fill=\"none\" stroke=\"#31688e\" stroke-width=\"1.5\" points=\"" +
         polyline + "\"/></svg><figcaption>" + caption + "</figcaption></figure>\n";
}

std::string validation_samples_html(const Model& model, const LatentDataset& data, int64_t count, double shift,
                                    const std::string& dir) {
  if (model.facts().in_channels != 3 || count <= 0) return "";
  if (!video_io_available()) return "<h2>Samples</h2>\n<p>None: this build has no video I/O (-DVDITKIT_VIDEO=OFF).</p>\n";
  std::string html = "<h2>Samples</h2>\n<p>20 Euler steps, guidance 3, with the captions of the first probe samples "
                     "(frames left to right; the MP4 beside each).</p>\n";
  for (int64_t i = 0; i < std::min(count, data.size()); ++i) {
    const LatentSample probe = data.read(i);
    SamplingOptions options;
    options.steps = 20;
    options.guidance = 3.0;
    options.shift = shift;
    options.seed = static_cast<uint64_t>(i);
    const Tensor x = sample(model, probe.latents.shape(), probe.context, options);
    const Tensor pixels = sample_pixels(x);
    const std::string name = "sample_" + std::to_string(i);
    if (pixels.size(2) % 2 == 0 && pixels.size(3) % 2 == 0) encode_mp4((std::filesystem::path(dir) / (name + ".mp4")).string(), pixels);
    html += "<figure>";
    for (const std::string& png : encode_pngs((std::filesystem::path(dir) / name).string(), pixels))
      html += "<img src=\"" + std::filesystem::path(png).filename().string() +
              "\" width=\"96\" style=\"image-rendering:pixelated;margin:1px\">";
    std::string caption = probe.prompt;
    for (const char* bad : {"&", "<", ">"}) {  // the caption is shown as text
      for (size_t at; (at = caption.find(bad)) != std::string::npos;) caption.replace(at, 1, " ");
    }
    html += "<figcaption>" + caption + " (" + name + ".mp4)</figcaption></figure>\n";
  }
  return html;
}

}  // namespace vdit
