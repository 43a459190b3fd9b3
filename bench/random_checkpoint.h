#pragma once
// Checkpoints with random weights for benchmarks: Wan-shaped, written as bf16 safetensors the
// way released weights come, values of standard deviation 1/sqrt(fan_in) so that activations
// stay finite through every block.
#include <string>

#include "layers/vdit_config.h"

namespace vdit::bench {

// Writes `path` (with the config in its metadata) and returns the parameter count.
int64_t write_random_checkpoint(const std::string& path, const VDiTConfig& config);

}  // namespace vdit::bench
