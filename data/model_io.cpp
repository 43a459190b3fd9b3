#include "data/model_io.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "autograd/check.h"
#include "data/atomic_file.h"
#include "data/diffusers_names.h"
#include "data/hdf5_file.h"
#include "data/model_config.h"
#include "data/safetensors.h"
#include "layers/vdit.h"

namespace vdit {

namespace fs = std::filesystem;

namespace {

// Drops the resident pages of a mapped tensor once a widened copy replaced it, so that loading
// a bf16 checkpoint as float32 does not hold both. Only whole pages inside the tensor go.
void release_mapped_pages(const void* data, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// The config normalised to Wan2.1's original field names (empty: inferred from the shapes).
nlohmann::json safetensors_config(const std::string& path, const LoadOptions& options) {
  const RawConfig raw = raw_safetensors_config(path, options);
  if (raw.json.empty()) return nlohmann::json::object();
  try {
    return normalize_config_json(raw.json, raw.source);
  } catch (const nlohmann::json::exception& e) {
    VDIT_FAIL(raw.source << ": config is not valid: " << e.what());
  }
}

LoadedModel load_safetensors(const std::string& path, const LoadOptions& options) {
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
  const std::vector<std::string> names = checkpoint.names();
  const bool diffusers = is_diffusers_layout(names);
  LoadedModel model;
  model.format = diffusers ? "safetensors (diffusers layout)" : "safetensors (original layout)";
  std::map<std::string, std::string> original_of;  // original name -> name in the file
  std::map<std::string, Shape> shapes;
  for (const std::string& name : names) {
    std::string original;
    try {
      original = diffusers ? diffusers_to_original(name) : name;
    } catch (const Error& e) {
      VDIT_FAIL(checkpoint.file_of(name) << ": " << e.what());
    }
    original_of[original] = name;
    shapes[original] = checkpoint.entry(name).shape;
  }
  model.config = resolve_config(safetensors_config(path, options), shapes, path);
  for (const auto& [original, name] : original_of) {
    model.dtypes[original] = checkpoint.entry(name).dtype;
    model.params[original] = read_checkpoint_tensor(checkpoint, name, options.frozen_bf16);
  }
  return model;
}

LoadedModel load_h5(const std::string& path, const LoadOptions& options) {
  const Hdf5File file(path, Hdf5File::Mode::Read);
  LoadedModel model;
  model.format = "vditkit h5";
  model.config = options.config_path.empty()
                     ? read_config_attributes(file)
                     : resolve_config(read_config_json(options.config_path), {}, options.config_path);
  for (const std::string& key : file.datasets()) {
    Tensor t = file.read(key);
    model.params[key] = options.frozen_bf16 ? t.to_bf16() : t;
    model.dtypes[key] = "F32";
  }
  return model;
}

}  // namespace

RawConfig raw_safetensors_config(const std::string& path, const LoadOptions& options) {
  if (!options.config_path.empty()) return {read_json_file(options.config_path), options.config_path};
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  const fs::path beside = (dir.empty() ? fs::path(".") : dir) / "config.json";
  if (fs::exists(beside)) return {read_json_file(beside.string()), beside.string()};
  if (path.ends_with(".safetensors")) {
    const std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open(path);
    const auto& metadata = file->metadata();
    if (auto it = metadata.find("config"); it != metadata.end()) {
      try {
        return {nlohmann::json::parse(it->second), path + " metadata"};
      } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e400
        VDIT_FAIL(path << ": metadata 'config' is not valid JSON: " << e.what());
      }
    }
  }
  return {nlohmann::json::object(), path};
}

Tensor read_checkpoint_tensor(const SafetensorsCheckpoint& checkpoint, const std::string& name, bool frozen_bf16) {
  Tensor t = checkpoint.tensor(name);
  if (frozen_bf16) return t.dtype() == DType::F32 ? t.to_bf16() : t;
  if (t.dtype() != DType::BF16) return t;
  Tensor widened = t.to_f32();
  release_mapped_pages(t.bf16_data(), static_cast<size_t>(t.numel()) * 2);
  return widened;
}

ModelFormat model_format_for(const std::string& path) {
  return path.ends_with(".h5") ? ModelFormat::H5 : ModelFormat::Safetensors;
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  VDIT_CHECK(fs::exists(path), path << ": no such file or directory");
  LoadedModel model = path.ends_with(".h5") ? load_h5(path, options) : load_safetensors(path, options);
  try {
    check_wan_parameters(model.config, model.params);
  } catch (const Error& e) {
    VDIT_FAIL(path << ": " << e.what());
  }
  return model;
}

void save_model(const std::string& path, const VDiTConfig& config, const ParameterMap& params,
                ModelFormat format, bool bf16) {
  check_wan_parameters(config, params);
  if (format == ModelFormat::H5) {
    write_hdf5_atomically(path, [&](Hdf5File& file) {
      write_config_attributes(file, config);
      for (const auto& [key, tensor] : params) file.write(key, tensor);
    });
    return;
  }
  const bool diffusers = format == ModelFormat::SafetensorsDiffusers;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [key, tensor] : params) tensors.emplace_back(diffusers ? original_to_diffusers(key) : key, tensor);
  const nlohmann::json config_json = diffusers ? config_to_diffusers_json(config) : config_to_json(config);
  const SafetensorsDType dtype = bf16 ? SafetensorsDType::BF16 : SafetensorsDType::F32;
  if (path.ends_with(".safetensors")) {
    write_safetensors(path, tensors, dtype, {{"config", config_json.dump()}, {"format", "pt"}});
    return;
  }
  fs::create_directories(path);
  write_safetensors((fs::path(path) / "diffusion_pytorch_model.safetensors").string(), tensors, dtype,
                    {{"format", "pt"}});
  write_text_atomically((fs::path(path) / "config.json").string(), config_json.dump(2) + "\n");
}

}  // namespace vdit
