#pragma once
// A fixed yardstick for a model: the flow-matching loss over every sample of a dataset at
// chosen noise levels with noise drawn from a fixed seed, so two models (or one model before
// and after retraining) are compared on exactly the same inputs, on the model's device.
#include <cstdint>
#include <vector>

#include "data/latent_dataset.h"
#include "layers/model.h"

namespace vdit {

double evaluate_loss(const Model& model, const LatentDataset& data, const std::vector<double>& sigmas = {0.25, 0.5, 0.75},
                     uint64_t seed = 1234);

}  // namespace vdit
