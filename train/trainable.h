#pragma once
// Turning a loaded, frozen model into one whose chosen parameters learn.
#include <set>
#include <string>
#include <vector>

#include "layers/model.h"
#include "optim/optimizer.h"
#include "train/retrain_options.h"

namespace vdit {

// Replaces the parameters named in `names` by float32 tensors that require a gradient: fresh
// ones drawn with the family's scheme (Model::init_parameter) from `seed` in name order (Reinit), or copies of the current
// values (Keep). Every other parameter stays as loaded: no gradient, no copy, except that with
// `frozen_bf16` float32 ones are narrowed to bf16. Then the model moves to `device` (Model::to:
// frozen weights bf16 on a GPU). Returns the trainable parameters, on `device`, in name order.
std::vector<TrainableParameter> make_trainable(Model& model, const std::set<std::string>& names, InitMode init,
                                               uint64_t seed, bool frozen_bf16 = false, Device device = {});

}  // namespace vdit
