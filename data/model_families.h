#pragma once
// The model families vditkit builds (the registry of the model seam, layers/model.h) and
// reading and writing a model of any of them. Wan2.1 keeps its formats (data/model_io.h);
// Mochi-1 and CogVideoX-2b are read in diffusers' layout (config.json naming its _class_name
// beside safetensors, sharded or not, F32 or BF16) and as vditkit .h5 files whose root
// attributes "family" and "config" (the config.json text) name them.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/model_io.h"
#include "layers/model.h"

namespace vdit {

struct LoadedFamilyModel {
  std::unique_ptr<Model> model;
  std::map<std::string, std::string> dtypes;  // each parameter's dtype in the file
  std::string format;
};

// A model of any family from `path` (the paths load_model takes). The family comes from the
// config: diffusers' _class_name, or an .h5 file's "family" attribute; else Wan2.1.
LoadedFamilyModel load_family_model(const std::string& path, const LoadOptions& options = {});

// A model of the family `config` names (_class_name; Wan2.1's config.json of either layout
// otherwise) over `params`; errors name `source`.
std::unique_ptr<Model> build_family_model(const nlohmann::json& config, ParameterMap params, const std::string& source);

// The format `model` is written in at `path` with --layout `layout` ("" for its family's own:
// Wan2.1's original layout, the diffusers layout of the others, which have no other).
ModelFormat output_format(const Model& model, const std::string& path, const std::string& layout);

// Writes atomically as save_model does: Wan2.1 through save_model, the others as an .h5 file
// or a diffusers directory (config.json + diffusion_pytorch_model.safetensors).
void save_family_model(const std::string& path, const Model& model, ModelFormat format, bool bf16 = false);

// A freshly initialised model (the family's Model::init_parameter rules, one stream from `seed`)
// of a preset: Wan2.1's (VDiTConfig::preset), "mochi-tiny", "mochi-1", "cogvideox-tiny",
// "cogvideox-2b"; `layers` > 0 replaces the block count. The tiny ones read make-data's default
// data (16 channels, 8 text rows of width 64). An unknown name is an error listing them.
std::unique_ptr<Model> create_family_model(const std::string& preset, int64_t layers, uint64_t seed);

// What data for a preset's model holds: latent channels and text width.
struct PresetDataShape {
  int64_t channels = 0, text_dim = 0;
};
PresetDataShape preset_data_shape(const std::string& preset);

// The config.json of the model's release: Wan2.1's in the original layout, the others' in
// diffusers' (with _class_name).
nlohmann::json family_config_json(const Model& model);

// A fingerprint of the config and every weight but the temperatures (adapters record it).
std::string family_model_identity(const Model& model);

}  // namespace vdit
