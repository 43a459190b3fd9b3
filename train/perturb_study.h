#pragma once
// The attention perturbation study (issue 16, item 4; the second seed paper): sampling with the
// chosen blocks' self- or joint attention replaced by the identity or the uniform map, each block alone and
// all of them together, against the unperturbed sample from the same noise, beside each block's
// mean self-attention entropy in that unperturbed run (a joint attention's video-to-video
// part, diagnostics/self_attention_entropy.h). A block whose replacement moves the sample
// far carries what that extreme of entropy destroys.
#include <string>
#include <vector>

#include "layers/attention_replacement.h"
#include "train/sampling.h"

namespace vdit {

struct PerturbStudyRow {
  std::string name;         // "block 3" or "all blocks"
  std::vector<int> blocks;  // the blocks replaced
  Tensor sample;            // [C, F, H, W] on the host
  double rms_to_reference = 0;              // latent RMS distance to the unperturbed sample
  std::vector<double> psnr_to_reference;    // pixel-space models: PSNR per frame, dB
  double entropy = 0;  // the blocks' mean self-attention entropy in the unperturbed run
};

struct PerturbStudy {
  Tensor reference;              // the unperturbed sample
  std::vector<double> entropy;   // every block's mean self-attention entropy (diagnostics/self_attention_entropy.h)
  std::vector<PerturbStudyRow> rows;  // each chosen block alone in order, then all of them
};

// `progress(done, total)` counts Euler steps over all the study's samples.
PerturbStudy run_perturb_study(const Model& model, const Shape& latent_shape, const Tensor& context,
                               const std::vector<int>& blocks, AttentionReplacement mode,
                               const SamplingOptions& options,
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace vdit
