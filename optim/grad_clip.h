#pragma once
// The global gradient norm and clipping by it (Pascanu et al. 2013), over every trainable
// parameter at once, as torch.nn.utils.clip_grad_norm_ does.
#include <vector>

#include "optim/optimizer.h"

namespace vdit {

// sqrt(sum of squares of every gradient), accumulated in double in a fixed order, so the result
// is bit-identical for any thread count; parameters without a gradient count zero. Inf and NaN
// propagate (the caller can skip such an update).
double global_grad_norm(const std::vector<TrainableParameter>& params);

// Scales every gradient by max_norm / norm when norm > max_norm (max_norm <= 0: no clipping;
// a non-finite norm leaves the gradients as they are, for the caller to see). Returns the norm
// before clipping.
double clip_grad_norm(const std::vector<TrainableParameter>& params, double max_norm);

}  // namespace vdit
