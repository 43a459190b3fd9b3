#pragma once
// Temperature adapters: the few learnt softmax temperatures of a tune-temperature run, kept
// apart from the base model in a small .h5 (one dataset per "blocks.i.<attention>.log_temperature",
// values log tau) that records which model it was made for, so it is never applied to another.
#include <string>

#include <nlohmann/json.hpp>

#include "layers/parameter_map.h"
#include "layers/vdit_config.h"

namespace vdit {

// A fingerprint of a model: a 64-bit hash (hex) of its config and the float32 values of its
// Wan parameters in key order (bf16 storage hashes as its widened values). Temperatures are
// not part of it.
std::string model_identity(const VDiTConfig& config, const ParameterMap& params);
// The same over any family's config.json (data/model_families.h family_model_identity).
std::string model_identity(const nlohmann::json& config, const ParameterMap& params);

struct Adapter {
  ParameterMap log_temperatures;
  std::string model_identity;  // of the base model
};

void write_adapter(const std::string& path, const Adapter& adapter);
Adapter read_adapter(const std::string& path);
// Adds the adapter's temperatures to `params` after checking it was made for the model whose
// model_identity is `identity` (computed once by the caller: it reads every weight); the error
// names the adapter file and both identities.
void apply_adapter(const std::string& path, const Adapter& adapter, const std::string& identity, ParameterMap& params);

}  // namespace vdit
