#pragma once
// Measuring a model's attention on a probe set: for every probe noise level, block and head,
// the streamed statistics of its self- and cross-attention (of a joint attention: its
// video-to-video, video-to-text and text-to-all parts, joint_attention.h) averaged over the probe samples,
// the correlation of its attention structure across samples, and how much each block's
// output changes when its attention is sparsified.
#include <cstdint>
#include <functional>
#include <vector>

#include "data/latent_dataset.h"
#include "diagnostics/attention_stats.h"
#include "diagnostics/diagnostics_report.h"
#include "layers/model.h"

namespace vdit {

struct DiagnoseOptions {
  std::vector<double> sigmas = {0.9, 0.5, 0.1};  // noise levels as the model sees them (shift applied)
  int64_t probe_samples = 2;   // the first samples of the dataset
  uint64_t noise_seed = 1234;  // the same noise at every diagnosis, so reports compare
  double sparse_keep = 0.1;    // fraction of keys kept per query in the sparsification test (0: skip)
  AttentionStatsOptions stats;
};

// `progress(done, total)` is called after each (noise level, sample) pair. Runs on the model's
// device (Model::to): on a GPU the statistics and the sparsified attention run there too.
DiagnosticsReport diagnose(const Model& model, const LatentDataset& data, const DiagnoseOptions& options,
                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace vdit
