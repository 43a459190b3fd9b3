#pragma once
// AdamW (Loshchilov & Hutter, decoupled weight decay), exactly torch.optim.AdamW's order and
// formulas, in float32 like PyTorch's CPU kernels, so that results match it to the bit:
//   p -= lr * wd * p                                     (decays(p) only)
//   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// t is steps(): a parameter that had no gradient at some update still counts it (torch counts
// per parameter); the trainer gives every trainable parameter a gradient at every update.
#include "optim/optimizer.h"

namespace vdit {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW : public Optimizer {
 public:
  explicit AdamW(std::vector<TrainableParameter> params, AdamWOptions options = {});
  void step(double lr) override;

 private:
  AdamWOptions options_;
};

}  // namespace vdit
