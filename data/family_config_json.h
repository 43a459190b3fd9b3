#pragma once
// config.json of the diffusers-layout families (MOCHI.md and COGVIDEOX.md, "Config"). A key the
// file lacks takes diffusers' default, which is the released model's value; an option these
// implementations do not cover (another norm, RoPE in CogVideoX, ...) is an error naming it.
#include <nlohmann/json.hpp>
#include <string>

#include "layers/cogvideox_config.h"
#include "layers/mochi_config.h"

namespace vdit {

// `source` names the file in errors. Both check `_class_name` and validate the result.
MochiConfig mochi_config_from_json(const nlohmann::json& raw, const std::string& source);
CogVideoXConfig cogvideox_config_from_json(const nlohmann::json& raw, const std::string& source);

// The config.json diffusers writes for these configs (with _class_name); read back equal.
nlohmann::json mochi_config_to_json(const MochiConfig& config);
nlohmann::json cogvideox_config_to_json(const CogVideoXConfig& config);

}  // namespace vdit
