#pragma once
// Models in and out: Wan2.1 safetensors as released (original or diffusers key layout, one
// file, a sharded index or a directory) and the vditkit HDF5 model format (one dataset per
// parameter under its original Wan name, config as root attributes).
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "data/safetensors.h"
#include "layers/parameter_map.h"
#include "layers/vdit_config.h"

namespace vdit {

struct LoadOptions {
  std::string config_path;   // a config.json to use instead of the one beside the weights
  bool frozen_bf16 = false;  // keep (or make) weights bf16: half the memory, frozen only
};

struct LoadedModel {
  VDiTConfig config;
  ParameterMap params;                        // original Wan names
  std::map<std::string, std::string> dtypes;  // each parameter's dtype in the file
  std::string format;                         // "safetensors (original layout)", ...
};

// `path`: a .safetensors file, a *.safetensors.index.json, a directory holding either (with
// config.json), or a vditkit .h5. Checks every key and shape against the config; errors name
// the file and the key.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// The config a safetensors checkpoint comes with, as written, in order: --config, config.json
// beside the weights, the "config" entry of a single file's metadata; else an empty object.
struct RawConfig {
  nlohmann::json json;
  std::string source;  // the file it came from, for errors
};
RawConfig raw_safetensors_config(const std::string& path, const LoadOptions& options);

// One tensor of a checkpoint as a model keeps it: with `frozen_bf16` float32 narrowed to bf16
// (bf16 kept as mapped), else bf16 widened to float32 and the mapped pages released.
Tensor read_checkpoint_tensor(const SafetensorsCheckpoint& checkpoint, const std::string& name, bool frozen_bf16);

enum class ModelFormat { H5, Safetensors, SafetensorsDiffusers };
// By extension: .h5 is vditkit HDF5; anything else safetensors in the original layout.
ModelFormat model_format_for(const std::string& path);

// Writes atomically. Safetensors go to `path` if it ends in .safetensors (the config in its
// metadata under "config"), otherwise into the directory `path` as
// diffusion_pytorch_model.safetensors beside a config.json of the same layout.
void save_model(const std::string& path, const VDiTConfig& config, const ParameterMap& params,
                ModelFormat format, bool bf16 = false);

}  // namespace vdit
