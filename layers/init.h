#pragma once
// Fresh parameters as Wan2.1 initialises them: Xavier-uniform linear and patch weights, zero
// biases, N(0, 0.02) text and time embedding weights, N(0, 1/d) modulation, unit norm
// weights, a zero output head, unit temperatures. Used to build new models and to
// reinitialise the layers chosen for retraining.
#include "autograd/random.h"
#include "layers/parameter_map.h"
#include "layers/vdit_config.h"

namespace vdit {

// A new float32 tensor of `shape` for parameter `key` (original Wan name).
Tensor init_wan_parameter(const std::string& key, const Shape& shape, Rng& rng);

// A new float32 tensor for parameter `key` of a diffusers-layout family (Mochi-1, CogVideoX-2b):
// Xavier-uniform weights of two or more axes (linear, patch), zero biases, unit norm weights
// (one axis), unit temperatures, and Mochi's `pos_frequencies` [3, heads, hd/2] set to RoPE's
// 10000^(-i / (hd/2)) on each axis.
Tensor init_diffusers_parameter(const std::string& key, const Shape& shape, Rng& rng);

// Every parameter of a model of `config`, drawn in wan_parameter_specs order from one stream.
ParameterMap init_wan_parameters(const VDiTConfig& config, uint64_t seed);

}  // namespace vdit
