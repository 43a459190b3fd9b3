#pragma once
// SGD with momentum, torch.optim.SGD's semantics (no dampening) in float32 like its CPU
// kernels, so that results match it to the bit:
//   d = g + wd p                        (L2 decay added to the gradient, decays(p) only)
//   b = momentum b + d                  (b starts at zero, so the first b is d, as in torch)
//   p -= lr (nesterov ? d + momentum b : b)
// With momentum 0 there is no buffer and p -= lr d.
#include "optim/optimizer.h"

namespace vdit {

struct SgdOptions {
  double momentum = 0.9, weight_decay = 0.0;
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  explicit Sgd(std::vector<TrainableParameter> params, SgdOptions options = {});
  void step(double lr) override;

 private:
  SgdOptions options_;
};

}  // namespace vdit
