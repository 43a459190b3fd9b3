#include "train/trainable.h"

#include "autograd/check.h"

namespace vdit {

std::vector<TrainableParameter> make_trainable(Model& model, const std::set<std::string>& names, InitMode init,
                                               uint64_t seed, bool frozen_bf16, Device device) {
  Rng rng(seed);
  ParameterMap fresh;
  std::vector<TrainableParameter> trainable;
  for (const std::string& name : names) {  // std::set: name order, so draws do not depend on the spec's order
    auto it = model.parameters().find(name);
    VDIT_CHECK(it != model.parameters().end(), "cannot train '" << name << "': the model has no such parameter");
    Tensor value = init == InitMode::Reinit ? model.init_parameter(name, it->second.shape(), rng) : it->second.clone();
    value.set_requires_grad(true);
    fresh[name] = value;
  }
  // A resume loads float32 values so that the trained ones continue exactly; only now that
  // they are known may the others be narrowed.
  if (frozen_bf16)
    for (const auto& [name, value] : model.parameters())
      if (!names.count(name) && value.dtype() == DType::F32) fresh[name] = value.to_bf16();
  model.set_parameters(fresh);
  if (device != model.device()) model.to(device);  // replaces the tensors: take handles after it
  for (const std::string& name : names) trainable.push_back({name, model.parameters().at(name)});
  return trainable;
}

}  // namespace vdit
