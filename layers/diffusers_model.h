#pragma once
// What the diffusers-layout families (Mochi-1, CogVideoX-2b) share behind the model seam: the
// velocity as their staged forward (with recomputation), diffusers' initialisation rules and
// one optional temperature per block for their joint attention.
#include "layers/family_params.h"
#include "layers/init.h"
#include "layers/staged_forward.h"

namespace vdit {

class DiffusersModel : public Model {
 public:
  Tensor velocity(const ModelInputs& inputs, AttentionProbe* probe) const override {
    return staged_velocity(*this, inputs, probe, recompute_frozen_);
  }
  Tensor init_parameter(const std::string& key, const Shape& shape, Rng& rng) const override {
    return init_diffusers_parameter(key, shape, rng);
  }
  std::string temperature_key(int block, AttentionKind kind) const override {
    return kind == AttentionKind::Joint ? joint_temperature_key(block) : "";
  }
  void set_recompute_frozen_blocks(bool recompute) override { recompute_frozen_ = recompute; }

 private:
  bool recompute_frozen_ = false;
};

}  // namespace vdit
