#pragma once
// Sampling with attention-map transfer (issue 16, layers/attention_transfer.h): a source and
// one or more targets are denoised in lockstep from the same noise, block by block, so that in
// each block the source's attention queries and keys (self or joint, layers/attention_transfer.h)
// of this very step are at hand when a target takes them; only one block's worth is held at a time. With guidance the conditional
// target takes the conditional source's map and the unconditional the unconditional's.
#include <vector>

#include "train/sampling.h"

namespace vdit {

struct TransferTarget {
  Tensor context;           // [L, text_dim] on the host
  std::vector<int> blocks;  // blocks whose self- or joint attention takes the source's map; none: a plain sample
};

// Denoising steps (from 0) in which the chosen blocks transfer; both ends included.
struct TransferSteps {
  int64_t first = 0;
  int64_t last = INT64_MAX;
  bool contains(int64_t step) const { return step >= first && step <= last; }
};

// The source's sample, then each target's, [C, F, H, W] on the host. Each is bit-identical to
// `sample` with its own context wherever the transfer has nothing to change (a target without
// blocks, or one whose context is the source's). Both contexts are needed (no unconditional
// source or target).
std::vector<Tensor> sample_with_transfer(const Model& model, const Shape& latent_shape, const Tensor& source_context,
                                         const std::vector<TransferTarget>& targets, const SamplingOptions& options,
                                         const TransferSteps& steps,
                                         const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace vdit
