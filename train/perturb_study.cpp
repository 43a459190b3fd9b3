#include "train/perturb_study.h"

#include "autograd/check.h"
#include "diagnostics/self_attention_entropy.h"
#include "train/sample_distance.h"

namespace vdit {

PerturbStudy run_perturb_study(const Model& model, const Shape& latent_shape, const Tensor& context,
                               const std::vector<int>& blocks, AttentionReplacement mode,
                               const SamplingOptions& options,
                               const std::function<void(int64_t, int64_t)>& progress) {
  VDIT_CHECK(!blocks.empty(), "perturbation study: no blocks chosen");
  const int64_t total = options.steps * static_cast<int64_t>(blocks.size() + 2);
  int64_t done = 0;
  auto steps = [&](int64_t step, int64_t) {
    if (progress) progress(done + step, total);
  };
  PerturbStudy study;
  SelfAttentionEntropy entropy(model.facts().num_blocks);
  study.reference = sample(model, latent_shape, context, options, steps, &entropy);
  done += options.steps;
  study.entropy = entropy.mean_entropy();

  std::vector<std::vector<int>> runs;
  for (int b : blocks) runs.push_back({b});
  runs.push_back(blocks);
  for (const std::vector<int>& replaced : runs) {
    AttentionReplacer replacer({replaced.begin(), replaced.end()}, mode);
    PerturbStudyRow row;
    row.name = runs.size() - study.rows.size() == 1 ? "all blocks" : "block " + std::to_string(replaced[0]);
    row.blocks = replaced;
    row.sample = sample(model, latent_shape, context, options, steps, &replacer);
    done += options.steps;
    row.rms_to_reference = rms_distance(row.sample, study.reference);
    if (latent_shape[0] == 3) row.psnr_to_reference = frame_psnr(study.reference, row.sample);
    for (int b : replaced) row.entropy += study.entropy[b] / static_cast<double>(replaced.size());
    study.rows.push_back(std::move(row));
  }
  return study;
}

}  // namespace vdit
