#include "data/family_config_json.h"

#include <initializer_list>
#include <utility>

#include "autograd/check.h"

namespace vdit {

namespace {

void check_class(const nlohmann::json& raw, const char* expected, const std::string& source) {
  VDIT_CHECK(raw.is_object(), source << ": config must be a JSON object");
  const std::string found = raw.value("_class_name", std::string("(none)"));
  VDIT_CHECK(found == expected, source << ": _class_name is " << found << ", expected " << expected);
}

// Reads `key` into `field` when present and not null; a wrong type is an error naming the key.
template <class T>
void read(const nlohmann::json& raw, const char* key, T& field, const std::string& source) {
  if (!raw.contains(key) || raw[key].is_null()) return;
  const nlohmann::json& v = raw[key];
  VDIT_CHECK(v.is_number() && (!std::is_integral_v<T> || v.is_number_integer()),
             source << ": " << key << " must be " << (std::is_integral_v<T> ? "an integer" : "a number") << ", got "
                    << v.dump());
  field = v.get<T>();
}

// Reads each (key, field) pair of integers as `read` does.
void read_integers(const nlohmann::json& raw, std::initializer_list<std::pair<const char*, int64_t*>> fields,
                   const std::string& source) {
  for (const auto& [key, field] : fields) read(raw, key, *field, source);
}

// Options fixed in the implemented variant: present keys must hold exactly these values.
void require(const nlohmann::json& raw, std::initializer_list<std::pair<const char*, nlohmann::json>> fixed,
             const std::string& source) {
  for (const auto& [key, value] : fixed)
    VDIT_CHECK(!raw.contains(key) || raw[key] == value,
               source << ": " << key << " is " << raw[key].dump() << "; only " << value.dump() << " is implemented");
}

}  // namespace

MochiConfig mochi_config_from_json(const nlohmann::json& raw, const std::string& source) {
  check_class(raw, "MochiTransformer3DModel", source);
  require(raw, {{"qk_norm", "rms_norm"}, {"activation_fn", "swiglu"}}, source);
  MochiConfig c;
  read_integers(raw,
                {{"patch_size", &c.patch_size},
                 {"num_attention_heads", &c.num_attention_heads},
                 {"attention_head_dim", &c.attention_head_dim},
                 {"num_layers", &c.num_layers},
                 {"pooled_projection_dim", &c.pooled_projection_dim},
                 {"in_channels", &c.in_channels}},
                source);
  c.out_channels = c.in_channels;  // null or absent: as many as go in
  read_integers(raw,
                {{"out_channels", &c.out_channels},
                 {"text_embed_dim", &c.text_embed_dim},
                 {"time_embed_dim", &c.time_embed_dim},
                 {"max_sequence_length", &c.max_sequence_length}},
                source);
  c.validate();
  return c;
}

CogVideoXConfig cogvideox_config_from_json(const nlohmann::json& raw, const std::string& source) {
  check_class(raw, "CogVideoXTransformer3DModel", source);
  require(raw,
          {{"flip_sin_to_cos", true},
           {"freq_shift", 0},
           {"attention_bias", true},
           {"activation_fn", "gelu-approximate"},
           {"timestep_activation_fn", "silu"},
           {"norm_elementwise_affine", true},
           {"use_rotary_positional_embeddings", false},
           {"use_learned_positional_embeddings", false},
           {"patch_size_t", nullptr},
           {"patch_bias", true},
           {"ofs_embed_dim", nullptr}},
          source);
  CogVideoXConfig c;
  read_integers(raw,
                {{"num_attention_heads", &c.num_attention_heads},
                 {"attention_head_dim", &c.attention_head_dim},
                 {"in_channels", &c.in_channels},
                 {"out_channels", &c.out_channels},
                 {"time_embed_dim", &c.time_embed_dim},
                 {"text_embed_dim", &c.text_embed_dim},
                 {"num_layers", &c.num_layers},
                 {"patch_size", &c.patch_size},
                 {"max_text_seq_length", &c.max_text_seq_length}},
                source);
  read(raw, "norm_eps", c.norm_eps, source);
  read(raw, "spatial_interpolation_scale", c.spatial_interpolation_scale, source);
  read(raw, "temporal_interpolation_scale", c.temporal_interpolation_scale, source);
  c.validate();
  return c;
}

nlohmann::json mochi_config_to_json(const MochiConfig& c) {
  return {{"_class_name", "MochiTransformer3DModel"},
          {"patch_size", c.patch_size},
          {"num_attention_heads", c.num_attention_heads},
          {"attention_head_dim", c.attention_head_dim},
          {"num_layers", c.num_layers},
          {"pooled_projection_dim", c.pooled_projection_dim},
          {"in_channels", c.in_channels},
          {"out_channels", c.out_channels},
          {"qk_norm", "rms_norm"},
          {"text_embed_dim", c.text_embed_dim},
          {"time_embed_dim", c.time_embed_dim},
          {"activation_fn", "swiglu"},
          {"max_sequence_length", c.max_sequence_length}};
}

nlohmann::json cogvideox_config_to_json(const CogVideoXConfig& c) {
  return {{"_class_name", "CogVideoXTransformer3DModel"},
          {"num_attention_heads", c.num_attention_heads},
          {"attention_head_dim", c.attention_head_dim},
          {"in_channels", c.in_channels},
          {"out_channels", c.out_channels},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"time_embed_dim", c.time_embed_dim},
          {"text_embed_dim", c.text_embed_dim},
          {"num_layers", c.num_layers},
          {"attention_bias", true},
          {"patch_size", c.patch_size},
          {"max_text_seq_length", c.max_text_seq_length},
          {"activation_fn", "gelu-approximate"},
          {"timestep_activation_fn", "silu"},
          {"norm_elementwise_affine", true},
          {"norm_eps", c.norm_eps},
          {"spatial_interpolation_scale", c.spatial_interpolation_scale},
          {"temporal_interpolation_scale", c.temporal_interpolation_scale},
          {"use_rotary_positional_embeddings", false},
          {"use_learned_positional_embeddings", false}};
}

}  // namespace vdit
