#pragma once
// Where a model's configuration comes from: config.json in the original or the diffusers
// layout, the attributes of a vditkit model.h5, and what the parameter shapes imply.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "data/hdf5_file.h"
#include "layers/vdit_config.h"

namespace vdit {

// A config.json of either layout as a partial config in the original field names (dim,
// ffn_dim, freq_dim, num_heads, num_layers, in_dim, out_dim, text_dim, text_len, patch_size,
// eps, qk_norm, cross_attn_norm, model_type); fields the file lacks are absent. `source`
// names the file in errors.
nlohmann::json normalize_config_json(const nlohmann::json& raw, const std::string& source);
nlohmann::json read_config_json(const std::string& path);
// A JSON file as it is; errors name the file and the byte.
nlohmann::json read_json_file(const std::string& path);

// Completes a partial config: fields it lacks are read off the parameter shapes (original
// key names) where they tell, otherwise take Wan2.1's released values where WAN21.md gives
// them (text_len 512, eps 1e-6); num_heads cannot be guessed and is an error naming `source`.
VDiTConfig resolve_config(const nlohmann::json& partial, const std::map<std::string, Shape>& shapes,
                          const std::string& source);

nlohmann::json config_to_json(const VDiTConfig& config);  // original layout, every field
// Diffusers' WanTransformer3DModel config, plus text_len (diffusers fixes it at 512).
nlohmann::json config_to_diffusers_json(const VDiTConfig& config);

void write_config_attributes(Hdf5File& file, const VDiTConfig& config);
VDiTConfig read_config_attributes(const Hdf5File& file);

}  // namespace vdit
