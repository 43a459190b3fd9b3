#include "data/model_config.h"

#include <cmath>
#include <fstream>

#include "autograd/check.h"

namespace vdit {

namespace {

// Diffusers' qk_norm is a string naming the norm ("rms_norm_across_heads") or null.
bool truthy(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) return !v.get<std::string>().empty();
  if (v.is_number()) return v.get<double>() != 0.0;
  return false;
}

// An integer config value. nlohmann converts a float to an integer with a plain cast, undefined
// beyond int64's range (fuzz_config found in_dim 2.7e32, a literal too long for an integer),
// so a float must hold an integral value in range; the error joins the reader's JSON errors.
int64_t integer(const nlohmann::json& v, const std::string& key) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(std::trunc(d) == d && d >= -0x1p63 && d < 0x1p63))
      throw nlohmann::json::type_error::create(302, key + " is " + v.dump() + ", not an integer within int64's range", &v);
    return static_cast<int64_t>(d);
  }
  return v.get<int64_t>();
}

std::array<int64_t, 3> patch_from_json(const nlohmann::json& v, const std::string& source) {
  VDIT_CHECK(v.is_array() && v.size() == 3, source << ": patch_size must be a list of 3 integers");
  return {integer(v[0], "patch_size"), integer(v[1], "patch_size"), integer(v[2], "patch_size")};
}

// The patch size is a divisor below (out_dim from the head's rows): check it before use.
void check_patch_size(const std::array<int64_t, 3>& patch, const std::string& source) {
  for (int64_t p : patch)
    VDIT_CHECK(p >= 1 && p <= VDiTConfig::kMaxPatch, source << ": patch_size [" << patch[0] << ", " << patch[1] << ", "
                                                             << patch[2] << "] must hold integers in 1.."
                                                             << VDiTConfig::kMaxPatch);
}

}  // namespace

nlohmann::json normalize_config_json(const nlohmann::json& raw, const std::string& source) {
  VDIT_CHECK(raw.is_object(), source << ": config must be a JSON object");
  nlohmann::json out = nlohmann::json::object();
  try {
    const bool diffusers = raw.contains("num_attention_heads") || raw.contains("in_channels");
    auto copy = [&](const char* from, const char* to) {
      if (raw.contains(from) && !raw[from].is_null()) out[to] = raw[from];
    };
    for (const char* same : {"ffn_dim", "freq_dim", "num_layers", "text_dim", "text_len", "eps", "model_type",
                             "patch_size"})
      copy(same, same);
    if (diffusers) {
      copy("num_attention_heads", "num_heads");
      copy("in_channels", "in_dim");
      copy("out_channels", "out_dim");
      if (raw.contains("num_attention_heads") && raw.contains("attention_head_dim")) {
        int64_t dim = 0;
        VDIT_CHECK(!__builtin_mul_overflow(integer(raw["num_attention_heads"], "num_attention_heads"),
                                           integer(raw["attention_head_dim"], "attention_head_dim"), &dim),
                   source << ": num_attention_heads * attention_head_dim overflows");
        out["dim"] = dim;
      }
      if (raw.contains("qk_norm")) out["qk_norm"] = truthy(raw["qk_norm"]);
      if (raw.contains("cross_attn_norm")) out["cross_attn_norm"] = truthy(raw["cross_attn_norm"]);
      VDIT_CHECK(!raw.contains("image_dim") || raw["image_dim"].is_null(),
                 source << ": image_dim is set: image-to-video models are not supported");
    } else {
      for (const char* same : {"dim", "num_heads", "in_dim", "out_dim"}) copy(same, same);
      if (raw.contains("qk_norm")) out["qk_norm"] = truthy(raw["qk_norm"]);
      if (raw.contains("cross_attn_norm")) out["cross_attn_norm"] = truthy(raw["cross_attn_norm"]);
    }
  } catch (const nlohmann::json::exception& e) {
    VDIT_FAIL(source << ": " << e.what());
  }
  return out;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  VDIT_CHECK(in, path << ": cannot open");
  nlohmann::json raw;
  try {
    raw = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    VDIT_FAIL(path << ": malformed JSON at byte " << e.byte << ": " << e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond double, e.g. 1e400
    VDIT_FAIL(path << ": malformed JSON: " << e.what());
  }
  return raw;
}

nlohmann::json read_config_json(const std::string& path) { return normalize_config_json(read_json_file(path), path); }

VDiTConfig resolve_config(const nlohmann::json& partial, const std::map<std::string, Shape>& shapes,
                          const std::string& source) {
  auto shape_of = [&](const std::string& key) -> const Shape* {
    auto it = shapes.find(key);
    return it == shapes.end() ? nullptr : &it->second;
  };
  VDiTConfig c;
  try {
    // An integer field: from the config, else from a shape, else an error naming it.
    auto field = [&](const char* name, const char* key, int axis) -> int64_t {
      if (partial.contains(name)) return integer(partial[name], name);
      const Shape* s = shape_of(key);
      VDIT_CHECK(s && static_cast<int>(s->size()) > axis,
                 source << ": cannot determine " << name << ": the config lacks it and '" << key
                        << "' is missing; pass --config with a config.json");
      return (*s)[axis];
    };
    c.dim = field("dim", "patch_embedding.weight", 0);
    c.in_dim = field("in_dim", "patch_embedding.weight", 1);
    if (partial.contains("patch_size")) {
      c.patch_size = patch_from_json(partial["patch_size"], source);
    } else if (const Shape* s = shape_of("patch_embedding.weight"); s && s->size() == 5) {
      c.patch_size = {(*s)[2], (*s)[3], (*s)[4]};
    }
    c.text_dim = field("text_dim", "text_embedding.0.weight", 1);
    c.freq_dim = field("freq_dim", "time_embedding.0.weight", 1);
    c.ffn_dim = field("ffn_dim", "blocks.0.ffn.0.weight", 0);
    check_patch_size(c.patch_size, source);
    if (partial.contains("out_dim")) {
      c.out_dim = integer(partial["out_dim"], "out_dim");
    } else {
      const int64_t rows = field("out_dim", "head.head.weight", 0);
      VDIT_CHECK(rows % c.patch_volume() == 0, source << ": head.head.weight has " << rows
                                                      << " rows, not a multiple of the patch volume " << c.patch_volume());
      c.out_dim = rows / c.patch_volume();
    }
    if (partial.contains("num_layers")) {
      c.num_layers = integer(partial["num_layers"], "num_layers");
    } else {
      c.num_layers = 0;
      while (shapes.count("blocks." + std::to_string(c.num_layers) + ".modulation")) ++c.num_layers;
    }
    VDIT_CHECK(partial.contains("num_heads"),
               source << ": cannot determine num_heads (no config gives it and shapes do not tell); "
                         "pass --config with a config.json");
    c.num_heads = integer(partial["num_heads"], "num_heads");
    c.text_len = partial.contains("text_len") ? integer(partial["text_len"], "text_len") : 512;
    c.eps = partial.value("eps", 1e-6f);
    c.qk_norm = partial.contains("qk_norm") ? partial["qk_norm"].get<bool>()
                                            : (shapes.empty() || shapes.count("blocks.0.self_attn.norm_q.weight") > 0);
    c.cross_attn_norm = partial.contains("cross_attn_norm") ? partial["cross_attn_norm"].get<bool>()
                                                            : (shapes.empty() || shapes.count("blocks.0.norm3.weight") > 0);
    c.model_type = partial.value("model_type", std::string("t2v"));
  } catch (const nlohmann::json::exception& e) {
    VDIT_FAIL(source << ": bad config value: " << e.what());
  }
  try {
    c.validate();
  } catch (const Error& e) {
    VDIT_FAIL(source << ": " << e.what());
  }
  return c;
}

nlohmann::json config_to_json(const VDiTConfig& c) {
  return {{"dim", c.dim},         {"ffn_dim", c.ffn_dim},       {"freq_dim", c.freq_dim},
          {"num_heads", c.num_heads}, {"num_layers", c.num_layers}, {"in_dim", c.in_dim},
          {"out_dim", c.out_dim}, {"text_dim", c.text_dim},     {"text_len", c.text_len},
          {"patch_size", c.patch_size}, {"eps", c.eps},         {"qk_norm", c.qk_norm},
          {"cross_attn_norm", c.cross_attn_norm}, {"model_type", c.model_type}};
}

nlohmann::json config_to_diffusers_json(const VDiTConfig& c) {
  return {{"_class_name", "WanTransformer3DModel"},
          {"patch_size", c.patch_size},
          {"num_attention_heads", c.num_heads},
          {"attention_head_dim", c.head_dim()},
          {"in_channels", c.in_dim},
          {"out_channels", c.out_dim},
          {"text_dim", c.text_dim},
          {"text_len", c.text_len},
          {"freq_dim", c.freq_dim},
          {"ffn_dim", c.ffn_dim},
          {"num_layers", c.num_layers},
          {"cross_attn_norm", c.cross_attn_norm},
          {"qk_norm", c.qk_norm ? nlohmann::json("rms_norm_across_heads") : nlohmann::json(nullptr)},
          {"eps", c.eps},
          {"image_dim", nullptr},
          {"added_kv_proj_dim", nullptr},
          {"rope_max_seq_len", 1024}};
}

void write_config_attributes(Hdf5File& file, const VDiTConfig& c) {
  const nlohmann::json fields = config_to_json(c);
  for (const auto& [name, value] : fields.items()) {
    if (value.is_array()) file.write_ints(name, value.get<std::vector<int64_t>>());
    else if (value.is_string()) file.write_string(name, value.get<std::string>());
    else if (value.is_number_float()) file.write_double(name, value.get<double>());
    else file.write_int(name, value.is_boolean() ? int64_t{value.get<bool>()} : value.get<int64_t>());
  }
}

VDiTConfig read_config_attributes(const Hdf5File& file) {
  nlohmann::json partial = nlohmann::json::object();
  const nlohmann::json fields = config_to_json(VDiTConfig{});  // the names and kinds of attribute
  for (const auto& [name, value] : fields.items()) {
    if (!file.has_attribute(name)) continue;
    if (value.is_array()) partial[name] = file.read_ints(name);
    else if (value.is_string()) partial[name] = file.read_string(name);
    else if (value.is_number_float()) partial[name] = file.read_double(name);
    else if (value.is_boolean()) partial[name] = file.read_int(name) != 0;
    else partial[name] = file.read_int(name);
  }
  std::map<std::string, Shape> shapes;
  for (const std::string& key : file.datasets()) shapes[key] = file.shape(key);
  return resolve_config(partial, shapes, file.path());
}

}  // namespace vdit
