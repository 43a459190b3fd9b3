#pragma once
// The probe set that `diagnose` and the studies share: the first samples of a dataset, one
// latent shape, noised at each probe level with the same fixed noise every time, so that
// reports of one model (or of a model before and after retraining) compare.
#include <cstdint>

#include "data/latent_dataset.h"
#include "diagnostics/attention_stats.h"
#include "layers/model.h"

namespace vdit {

struct ProbeSet {
  int64_t samples = 0;  // the first `samples` of the dataset
  TokenGrid grid;       // self-attention's token grid of every probe sample
};

// The first min(probe_samples, data.size()) samples, checked to share one latent shape that the
// model's patches divide; `who` starts the error messages (the command's name).
ProbeSet probe_set(const ModelFacts& facts, const LatentDataset& data, int64_t probe_samples, const char* who);

// Sample s noised to level sigma as flow matching does: (1 - sigma) x + sigma n, n normal from
// seed noise_seed + s. [1, C, F, H, W] on the CPU.
Tensor probe_latents(const LatentSample& sample, int64_t s, double sigma, uint64_t noise_seed);

// One sample's model inputs on `device`: latents [1, C, F, H, W] as given, the sample's context
// [1, L, text_dim] and its mask [1, L] (undefined when it has none), at `timestep`.
ModelInputs sample_inputs(const Tensor& latents, double timestep, const LatentSample& sample, Device device);

// The model's first stage (first block's input, time and text embeddings) of probe sample s at
// level sigma, on the model's device.
std::unique_ptr<Model::Stage> embed_probe(const Model& model, const LatentSample& sample, int64_t s, double sigma, uint64_t noise_seed);

// sum (a - b)^2, or sum a^2 when b is undefined: in double on the CPU; on a GPU the sum runs
// there in fp32 and only it comes back.
double sum_squared_difference(const Tensor& a, const Tensor& b = {});

}  // namespace vdit
