#pragma once
// The whole forward pass through a model's stages (embedding, blocks, head), for the families
// whose velocity is nothing more; with recomputation, frozen blocks after the first trainable
// one keep only their input streams for the backward pass (autograd/checkpoint.h).
#include "layers/model.h"

namespace vdit {

// Recomputing a frozen block is exact only when its one input needing a gradient is the
// streams: not with a probe, nor where the stage is `differentiable`.
Tensor staged_velocity(const Model& model, const ModelInputs& inputs, AttentionProbe* probe, bool recompute);

}  // namespace vdit
