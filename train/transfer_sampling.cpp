#include "train/transfer_sampling.h"

#include <algorithm>

#include "autograd/check.h"
#include "layers/attention_transfer.h"

namespace vdit {

std::vector<Tensor> sample_with_transfer(const Model& model, const Shape& latent_shape, const Tensor& source_context,
                                         const std::vector<TransferTarget>& targets, const SamplingOptions& options,
                                         const TransferSteps& steps,
                                         const std::function<void(int64_t, int64_t)>& progress) {
  const ModelFacts c = model.facts();
  VDIT_CHECK(source_context.defined(), "attention transfer: the source needs a prompt or context");
  for (const TransferTarget& t : targets) {
    VDIT_CHECK(t.context.defined(), "attention transfer: every target needs a prompt or context");
    for (int b : t.blocks)
      VDIT_CHECK(b >= 0 && b < c.num_blocks, "attention transfer: block " << b << " out of range (the model has "
                                                                         << c.num_blocks << " blocks)");
  }
  const bool guided = is_guided(source_context, options);
  const Device device = model.device();
  std::vector<SamplingText> texts{sampling_text(c, source_context, guided, device)};
  for (const TransferTarget& t : targets) texts.push_back(sampling_text(c, t.context, guided, device));

  const LockstepDenoiser denoise = [&](const std::vector<Tensor>& inputs, const std::vector<double>& timesteps,
                                       int64_t step) {
    // Stream 0 is the source; each block runs it first, then every target, as forward() would.
    std::vector<std::unique_ptr<Model::Stage>> stages;
    std::vector<TokenStreams> hidden;
    for (size_t s = 0; s < inputs.size(); ++s) {
      stages.push_back(model.embed_stage({inputs[s], timesteps, texts[s].context, texts[s].mask}));
      hidden.push_back(std::move(stages.back()->streams));  // held in `hidden` only, so that it goes once used
    }
    const bool transferring = steps.contains(step);
    for (int b = 0; b < c.num_blocks; ++b) {
      auto transfers = [&](const TransferTarget& t) {
        return transferring && std::find(t.blocks.begin(), t.blocks.end(), b) != t.blocks.end();
      };
      AttentionMapRecorder recorder;
      const bool any = std::any_of(targets.begin(), targets.end(), transfers);
      hidden[0] = model.block_stage(b, hidden[0], *stages[0], any ? &recorder : nullptr);
      AttentionMapTransfer transfer(recorder);
      for (size_t t = 0; t < targets.size(); ++t)
        hidden[t + 1] = model.block_stage(b, hidden[t + 1], *stages[t + 1], transfers(targets[t]) ? &transfer : nullptr);
    }
    std::vector<Tensor> outputs;
    for (size_t s = 0; s < inputs.size(); ++s) outputs.push_back(model.head_stage(hidden[s], *stages[s]));
    return outputs;
  };
  return sample_lockstep(model, latent_shape, static_cast<int64_t>(targets.size()) + 1, guided, options, denoise,
                         progress);
}

}  // namespace vdit
