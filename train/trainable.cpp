#include "train/trainable.h"

#include "autograd/check.h"
#include "layers/init.h"

namespace vdit {

std::vector<TrainableParameter> make_trainable(VDiT& model, const std::set<std::string>& names, InitMode init,
                                               uint64_t seed) {
  Rng rng(seed);
  ParameterMap fresh;
  std::vector<TrainableParameter> trainable;
  for (const std::string& name : names) {  // std::set: name order, so draws do not depend on the spec's order
    auto it = model.parameters().find(name);
    VDIT_CHECK(it != model.parameters().end(), "cannot train '" << name << "': the model has no such parameter");
    Tensor value = init == InitMode::Reinit ? init_wan_parameter(name, it->second.shape(), rng) : it->second.clone();
    value.set_requires_grad(true);
    fresh[name] = value;
    trainable.push_back({name, value});
  }
  model.set_parameters(fresh);
  return trainable;
}

}  // namespace vdit
