#include "data/model_families.h"

#include <filesystem>

#include "autograd/check.h"
#include "data/adapter.h"
#include "data/atomic_file.h"
#include "data/family_config_json.h"
#include "data/hdf5_file.h"
#include "data/model_config.h"
#include "data/safetensors.h"
#include "layers/cogvideox_model.h"
#include "layers/init.h"
#include "layers/mochi_model.h"
#include "layers/vdit.h"

namespace vdit {

namespace fs = std::filesystem;

namespace {

// A diffusers-layout family: how its config.json reads and writes, how its model is built.
struct DiffusersFamily {
  const char* name;
  const char* class_name;
  std::unique_ptr<Model> (*build)(const nlohmann::json& config, ParameterMap params, const std::string& source);
  nlohmann::json (*config_json)(const Model& model);
  std::vector<ParamSpec> (*specs)(const nlohmann::json& config, const std::string& source);
};

template <class M, class Config>
std::unique_ptr<Model> build_as(Config (*from_json)(const nlohmann::json&, const std::string&),
                                const nlohmann::json& config, ParameterMap params, const std::string& source) {
  Config c = from_json(config, source);
  try {
    return std::make_unique<M>(std::move(c), std::move(params));
  } catch (const Error& e) {
    VDIT_FAIL(source << ": " << e.what());
  }
}

const std::vector<DiffusersFamily>& diffusers_families() {
  static const std::vector<DiffusersFamily> families = {
      {"mochi-1", "MochiTransformer3DModel",
       [](const nlohmann::json& c, ParameterMap p, const std::string& s) {
         return build_as<MochiModel>(&mochi_config_from_json, c, std::move(p), s);
       },
       [](const Model& m) { return mochi_config_to_json(dynamic_cast<const MochiModel&>(m).config()); },
       [](const nlohmann::json& c, const std::string& s) { return mochi_parameter_specs(mochi_config_from_json(c, s)); }},
      {"cogvideox", "CogVideoXTransformer3DModel",
       [](const nlohmann::json& c, ParameterMap p, const std::string& s) {
         return build_as<CogVideoXModel>(&cogvideox_config_from_json, c, std::move(p), s);
       },
       [](const Model& m) { return cogvideox_config_to_json(dynamic_cast<const CogVideoXModel&>(m).config()); },
       [](const nlohmann::json& c, const std::string& s) {
         return cogvideox_parameter_specs(cogvideox_config_from_json(c, s));
       }},
  };
  return families;
}

const DiffusersFamily* family_of_config(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("_class_name") || !config["_class_name"].is_string()) return nullptr;
  for (const DiffusersFamily& f : diffusers_families())
    if (config["_class_name"] == f.class_name) return &f;
  return nullptr;
}

const DiffusersFamily* family_named(const std::string& name) {
  for (const DiffusersFamily& f : diffusers_families())
    if (name == f.name) return &f;
  return nullptr;
}

std::unique_ptr<Model> wan_model(LoadedModel loaded) {
  return std::make_unique<VDiT>(std::move(loaded.config), std::move(loaded.params));
}

// The .h5 of a diffusers-layout family, or null for Wan2.1's (which has no "family").
const DiffusersFamily* h5_family(const Hdf5File& file) {
  if (!file.has_attribute("family")) return nullptr;
  const std::string name = file.read_string("family");
  if (name == "wan2.1") return nullptr;
  const DiffusersFamily* family = family_named(name);
  VDIT_CHECK(family, file.path() << ": unknown model family '" << name << "'");
  return family;
}

LoadedFamilyModel load_diffusers_h5(const Hdf5File& file, const DiffusersFamily& family, const LoadOptions& options) {
  VDIT_CHECK(file.has_attribute("config"), file.path() << ": a " << family.name << " model without its 'config' attribute");
  nlohmann::json config;
  const std::string source = options.config_path.empty() ? file.path() + " attribute 'config'" : options.config_path;
  if (!options.config_path.empty()) {
    config = read_json_file(options.config_path);
  } else {
    try {
      config = nlohmann::json::parse(file.read_string("config"));
    } catch (const nlohmann::json::exception& e) {
      VDIT_FAIL(source << " is not valid JSON: " << e.what());
    }
  }
  LoadedFamilyModel out;
  out.format = "vditkit h5";
  ParameterMap params;
  for (const std::string& key : file.datasets()) {
    const Tensor t = file.read(key);
    params[key] = options.frozen_bf16 ? t.to_bf16() : t;
    out.dtypes[key] = "F32";
  }
  out.model = build_family_model(config, std::move(params), source);
  return out;
}

LoadedFamilyModel load_diffusers_safetensors(const std::string& path, const RawConfig& config,
                                             const LoadOptions& options) {
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
  LoadedFamilyModel out;
  out.format = "safetensors (diffusers layout)";
  ParameterMap params;
  for (const std::string& name : checkpoint.names()) {
    out.dtypes[name] = checkpoint.entry(name).dtype;
    params[name] = read_checkpoint_tensor(checkpoint, name, options.frozen_bf16);
  }
  try {
    out.model = build_family_model(config.json, std::move(params), config.source);
  } catch (const Error& e) {
    VDIT_FAIL(path << ": " << e.what());
  }
  return out;
}

}  // namespace

std::unique_ptr<Model> build_family_model(const nlohmann::json& config, ParameterMap params, const std::string& source) {
  if (const DiffusersFamily* family = family_of_config(config)) return family->build(config, std::move(params), source);
  std::map<std::string, Shape> shapes;
  for (const auto& [key, value] : params) shapes[key] = value.shape();
  return std::make_unique<VDiT>(resolve_config(normalize_config_json(config, source), shapes, source), std::move(params));
}

LoadedFamilyModel load_family_model(const std::string& path, const LoadOptions& options) {
  VDIT_CHECK(fs::exists(path), path << ": no such file or directory");
  if (path.ends_with(".h5")) {
    const Hdf5File file(path, Hdf5File::Mode::Read);
    if (const DiffusersFamily* family = h5_family(file)) return load_diffusers_h5(file, *family, options);
  } else if (const RawConfig config = raw_safetensors_config(path, options); family_of_config(config.json)) {
    return load_diffusers_safetensors(path, config, options);
  }
  LoadedModel wan = load_model(path, options);
  LoadedFamilyModel out;
  out.format = wan.format;
  out.dtypes = wan.dtypes;
  out.model = wan_model(std::move(wan));
  return out;
}

namespace {

// The presets of the diffusers-layout families, by name.
nlohmann::json diffusers_preset(const std::string& name, int64_t layers) {
  nlohmann::json config;
  if (name == "mochi-1") config = mochi_config_to_json(MochiConfig::mochi_1_preview());
  if (name == "cogvideox-2b") config = cogvideox_config_to_json(CogVideoXConfig::cogvideox_2b());
  // Heads of 64, the smallest width the GPU's fused attention takes, so that the tiny presets run there too.
  if (name == "mochi-tiny") {
    config = mochi_config_to_json({.patch_size = 2, .num_attention_heads = 2, .attention_head_dim = 64, .num_layers = 4,
                                   .pooled_projection_dim = 64, .in_channels = 16, .out_channels = 16,
                                   .text_embed_dim = 64, .time_embed_dim = 32, .max_sequence_length = 32});
  }
  if (name == "cogvideox-tiny") {
    config = cogvideox_config_to_json({.num_attention_heads = 2, .attention_head_dim = 64, .in_channels = 16,
                                       .out_channels = 16, .time_embed_dim = 64, .text_embed_dim = 64, .num_layers = 4,
                                       .patch_size = 2, .max_text_seq_length = 8});
  }
  if (!config.is_null() && layers > 0) config["num_layers"] = layers;
  return config;
}

// Wan2.1's preset of that name; an error listing every family's presets otherwise.
VDiTConfig wan_preset(const std::string& preset) {
  try {
    return VDiTConfig::preset(preset);
  } catch (const Error&) {
    VDIT_FAIL("unknown preset '" << preset
                                 << "' (known: tiny, pixel-tiny, wan-1.3b, wan-14b, mochi-tiny, mochi-1, "
                                    "cogvideox-tiny, cogvideox-2b)");
  }
}

}  // namespace

PresetDataShape preset_data_shape(const std::string& preset) {
  const nlohmann::json config = diffusers_preset(preset, 0);
  if (config.is_null()) {
    const VDiTConfig wan = wan_preset(preset);
    return {wan.in_dim, wan.text_dim};
  }
  return {config["in_channels"].get<int64_t>(), config["text_embed_dim"].get<int64_t>()};
}

std::unique_ptr<Model> create_family_model(const std::string& preset, int64_t layers, uint64_t seed) {
  const nlohmann::json config = diffusers_preset(preset, layers);
  if (config.is_null()) {
    VDiTConfig wan = wan_preset(preset);
    if (layers > 0) wan.num_layers = layers;
    return std::make_unique<VDiT>(wan, init_wan_parameters(wan, seed));
  }
  const DiffusersFamily& family = *family_of_config(config);
  const std::string source = "preset " + preset;
  Rng rng(seed);
  ParameterMap params;
  for (const ParamSpec& spec : family.specs(config, source))
    params[spec.name] = init_diffusers_parameter(spec.name, spec.shape, rng);
  return family.build(config, std::move(params), source);
}

nlohmann::json family_config_json(const Model& model) {
  if (const DiffusersFamily* family = family_named(model.facts().family)) return family->config_json(model);
  return config_to_json(dynamic_cast<const VDiT&>(model).config());
}

ModelFormat output_format(const Model& model, const std::string& path, const std::string& layout) {
  const ModelFormat format = model_format_for(path);
  if (format == ModelFormat::H5) return format;
  const DiffusersFamily* family = family_named(model.facts().family);
  if (!family) return layout == "diffusers" ? ModelFormat::SafetensorsDiffusers : format;
  VDIT_CHECK(layout != "original", "--layout original: a " << family->name
                                       << " model has only the diffusers layout (the original layout is Wan2.1's)");
  return ModelFormat::SafetensorsDiffusers;
}

void save_family_model(const std::string& path, const Model& model, ModelFormat format, bool bf16) {
  const DiffusersFamily* family = family_named(model.facts().family);
  if (!family) {
    save_model(path, dynamic_cast<const VDiT&>(model).config(), model.parameters(), format, bf16);
    return;
  }
  const nlohmann::json config = family->config_json(model);
  if (format == ModelFormat::H5) {
    write_hdf5_atomically(path, [&](Hdf5File& file) {
      file.write_string("family", family->name);
      file.write_string("config", config.dump());
      for (const auto& [key, tensor] : model.parameters()) file.write(key, tensor);
    });
    return;
  }
  VDIT_CHECK(!path.ends_with(".safetensors"),
             path << ": a " << family->name << " model is written as a diffusers directory (config.json beside "
                     "diffusion_pytorch_model.safetensors): give a directory");
  std::vector<std::pair<std::string, Tensor>> tensors(model.parameters().begin(), model.parameters().end());
  fs::create_directories(path);
  write_safetensors((fs::path(path) / "diffusion_pytorch_model.safetensors").string(), tensors,
                    bf16 ? SafetensorsDType::BF16 : SafetensorsDType::F32, {{"format", "pt"}});
  write_text_atomically((fs::path(path) / "config.json").string(), config.dump(2) + "\n");
}

std::string family_model_identity(const Model& model) {
  return model_identity(family_config_json(model), model.parameters());
}

}  // namespace vdit
