#pragma once
// `vditkit study sparsity` (issue 16): per-block sparsification curves. On the probe set of
// `diagnose` (same samples, noise levels and fixed noise), each query of a block's
// self-attention keeps only its ceil(keep * keys) most probable keys, renormalised over them
// (sparse_attention.h), one block at a time and all blocks together, at each keep level; the
// study measures how far the model's velocity and the block's own output move. A layer that
// looks sparse (most mass on few keys) but whose curve rises early cannot be sparsified.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/latent_dataset.h"
#include "layers/model.h"

namespace vdit {

struct SparsityStudyOptions {
  std::vector<double> keep = {0.9, 0.7, 0.5, 0.3, 0.1};  // fractions of keys kept, each in (0, 1]
  std::vector<double> sigmas = {0.9, 0.5, 0.1};            // noise levels as the model sees them (shift applied)
  int64_t probe_samples = 2;
  uint64_t noise_seed = 1234;  // diagnose's, so the two see the same inputs
};

// Errors are relative: sqrt(sum (masked - dense)^2) / sqrt(sum dense^2), each sum over every
// probe sample, noise level and element. Indexed [block][level] (b * levels + l).
struct SparsityStudy {
  std::vector<double> keep, sigmas;
  int64_t blocks = 0, probe_samples = 0;
  std::vector<double> velocity_error;             // only block b masked: the model's velocity
  std::vector<double> all_blocks_velocity_error;  // [levels]: every block masked at once
  std::vector<double> block_output_error;         // only block b masked: block b's output (residual stream included)
  std::string model;

  int64_t levels() const { return static_cast<int64_t>(keep.size()); }
};

// `progress(done, total)` after each masked run: (noise level, sample, keep level) and one
// block or all blocks. Runs on the model's
// device; on a GPU the sparsified attention is the CUDA kernel's (bf16, selection exact but for
// the cases sparse_attention_kernels.cuh states).
SparsityStudy run_sparsity_study(const Model& model, const LatentDataset& data, const SparsityStudyOptions& options,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

// The sensitivity rule of the report: block b is sensitive at a level when its velocity error
// exceeds both `ratio` times the median of the other blocks' errors at that level and that
// median plus `floor` (so that blocks all near zero are not told apart by noise). One model with
// one block has no others: nothing is sensitive.
struct SensitivityRule {
  double ratio = 3.0;
  double floor = 0.05;
};
struct SensitiveBlock {
  int64_t block;
  std::vector<int64_t> levels;  // level indices where the rule holds
};
std::vector<SensitiveBlock> sensitive_blocks(const SparsityStudy& study, const SensitivityRule& rule);

// DIR/sparsity.h5 (datasets velocity_error [B, L], all_blocks_velocity_error [L],
// block_output_error [B, L], keep [L], sigmas [T], float32; attributes model, probe_samples,
// sensitive_ratio, sensitive_floor) and DIR/report.html (the curves as inline SVG, the table,
// the sensitive blocks and the rule).
void write_sparsity_report(const std::string& dir, const SparsityStudy& study, const SensitivityRule& rule);

}  // namespace vdit
