#pragma once
// Softmax temperatures as a fine-tuning knob: which log-temperature parameters a
// tune-temperature run adds and learns, and fixed temperatures to explore their effect.
#include <string>
#include <vector>

#include "layers/parameter_map.h"
#include "layers/model.h"

namespace vdit {

enum class TemperatureGranularity { Head, Block };  // one tau per head, or one per block
TemperatureGranularity parse_temperature_granularity(const std::string& name);  // "head" | "block"
std::string to_string(TemperatureGranularity granularity);

// Log temperatures of zero (tau = 1: the model is unchanged) for the main attention of
// `blocks`, and their cross-attention too when `cross_attn` (Wan2.1 only): [num_heads] or [1] each.
ParameterMap unit_temperatures(const Model& model, const std::vector<int>& blocks, TemperatureGranularity granularity,
                               bool cross_attn);

// "BLOCKS:VALUE[;BLOCKS:VALUE...]" (blocks as for --blocks: "0-2", "3,7", "all"): a fixed
// main-attention temperature tau = VALUE > 0 for those blocks, as log-temperature parameters
// [1]. Errors name `flag`.
ParameterMap fixed_temperatures(const std::string& spec, const Model& model, const std::string& flag);

}  // namespace vdit
