#pragma once
// What a training run adds to each checkpoint's report: its loss curve so far and, for
// pixel-space models, a few validation samples drawn with the probe samples' captions.
#include <string>

#include "data/latent_dataset.h"
#include "layers/model.h"

namespace vdit {

// An inline SVG of the smoothed loss of every step in the JSON-lines log at `log_path`.
std::string loss_curve_html(const std::string& log_path);

// Samples `count` clips with the contexts (captions) of the first samples of `data` (20 Euler
// steps, guidance 3, the run's `shift`, seed = sample index), writes DIR/sample_<i>.mp4 and
// its frames as PNGs, and returns the HTML showing them. Empty for latent-space models, which
// cannot be looked at without a VAE.
std::string validation_samples_html(const Model& model, const LatentDataset& data, int64_t count, double shift,
                                    const std::string& dir);

}  // namespace vdit
