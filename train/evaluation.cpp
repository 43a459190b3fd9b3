#include "train/evaluation.h"

#include "autograd/tape.h"
#include "diagnostics/probe_set.h"
#include "train/flow_matching.h"

namespace vdit {

double evaluate_loss(const Model& model, const LatentDataset& data, const std::vector<double>& sigmas, uint64_t seed) {
  NoGradScope no_grad;
  double total = 0.0;
  for (int64_t i = 0; i < data.size(); ++i) {
    const LatentSample sample = data.read(i);
    Shape latents = sample.latents.shape();
    latents.insert(latents.begin(), 1);
    Rng noise_rng(seed + static_cast<uint64_t>(i));
    for (double sigma : sigmas) {
      const NoisyBatch batch =
          make_noisy_batch_at(reshape(sample.latents, latents), {sigma}, LossWeighting::None, noise_rng).to(model.device());
      const Tensor velocity = model.velocity(sample_inputs(batch.x_sigma, 1000.0 * sigma, sample, model.device()), nullptr);
      total += flow_matching_loss(velocity, batch).item();
    }
  }
  return total / static_cast<double>(data.size() * sigmas.size());
}

}  // namespace vdit
