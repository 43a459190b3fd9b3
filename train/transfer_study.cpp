#include "train/transfer_study.h"

#include "autograd/check.h"
#include "train/sample_distance.h"

namespace vdit {

namespace {

SampleComparison compare(const Tensor& sample, const Tensor& source, const Tensor& target) {
  SampleComparison c{rms_distance(sample, source), rms_distance(sample, target), {}, {}};
  if (sample.size(0) == 3) {  // pixel space
    c.psnr_to_source = frame_psnr(source, sample);
    c.psnr_to_target = frame_psnr(target, sample);
  }
  return c;
}

}  // namespace

TransferStudy run_transfer_study(const Model& model, const Shape& latent_shape, const Tensor& source_context,
                                 const Tensor& target_context, const std::vector<int>& blocks,
                                 const SamplingOptions& options, const TransferSteps& steps,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  VDIT_CHECK(!blocks.empty(), "transfer study: no blocks chosen");
  std::vector<TransferTarget> targets{{target_context, {}}};
  for (int b : blocks) targets.push_back({target_context, {b}});
  targets.push_back({target_context, blocks});
  const std::vector<Tensor> samples =
      sample_with_transfer(model, latent_shape, source_context, targets, options, steps, progress);

  TransferStudy study;
  study.source = samples[0];
  study.target = samples[1];
  study.target_comparison = compare(study.target, study.source, study.target);
  for (size_t i = 0; i < blocks.size(); ++i)
    study.rows.push_back({"block " + std::to_string(blocks[i]), {blocks[i]}, samples[i + 2], {}});
  study.rows.push_back({"all blocks", blocks, samples.back(), {}});
  for (TransferStudyRow& row : study.rows) row.comparison = compare(row.sample, study.source, study.target);
  return study;
}

}  // namespace vdit
