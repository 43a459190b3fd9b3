#pragma once
// The building blocks every Wan layer is made of. Each holds handles to parameter tensors
// owned by the model's ParameterMap (no copies); calling one records on the tape only when
// its input or its parameters require a gradient.
#include <string>

#include "autograd/ops.h"
#include "layers/parameter_map.h"

namespace vdit {

// y = x W^T + b, W [out, in] as stored in the checkpoint.
struct Linear {
  Tensor weight;
  Tensor bias;  // may be undefined
  Tensor operator()(const Tensor& x) const { return linear(x, weight, bias); }
};

// The Linear whose weight and bias are stored under `prefix`.weight and `prefix`.bias.
Linear linear_from(const ParameterMap& params, const std::string& prefix);

// LayerNorm over the last axis; without weight and bias it has no affine part.
struct LayerNorm {
  Tensor weight;
  Tensor bias;
  float eps = 1e-6f;
  Tensor operator()(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }
};

// RMSNorm over the last axis. An undefined weight means the norm is switched off (Wan's
// qk_norm = false uses the identity here).
struct RMSNorm {
  Tensor weight;
  float eps = 1e-6f;
  Tensor operator()(const Tensor& x) const { return weight.defined() ? rms_norm(x, weight, eps) : x; }
};

}  // namespace vdit
