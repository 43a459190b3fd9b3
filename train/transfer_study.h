#pragma once
// The per-block transfer study (issue 16, item 2): which blocks' self- (or joint) attention maps carry a
// generation's structure. From one noise: the source prompt's sample, the target prompt's plain
// sample, the target with each chosen block's map transferred from the source alone, and with
// all chosen blocks at once; each compared with the source and with the plain target.
#include <string>
#include <vector>

#include "train/transfer_sampling.h"

namespace vdit {

struct SampleComparison {
  double rms_to_source = 0, rms_to_target = 0;  // latent RMS distance (train/sample_distance.h)
  // Pixel-space models only: PSNR per frame in dB against each.
  std::vector<double> psnr_to_source, psnr_to_target;
};

struct TransferStudyRow {
  std::string name;         // "block 3" or "all blocks"
  std::vector<int> blocks;  // the blocks transferred
  Tensor sample;            // [C, F, H, W] on the host
  SampleComparison comparison;
};

struct TransferStudy {
  Tensor source, target;
  SampleComparison target_comparison;  // the plain target against the source (and itself)
  std::vector<TransferStudyRow> rows;  // each chosen block alone in order, then all of them
};

// All samples in one lockstep run (the source runs once for every target).
TransferStudy run_transfer_study(const Model& model, const Shape& latent_shape, const Tensor& source_context,
                                 const Tensor& target_context, const std::vector<int>& blocks,
                                 const SamplingOptions& options, const TransferSteps& steps,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace vdit
