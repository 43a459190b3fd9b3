#pragma once
// CogVideoX-2b's configuration in diffusers' names (COGVIDEOX.md, "Config") and its parameters
// in the diffusers layout ("Parameter names").
#include <cstdint>
#include <vector>

#include "layers/vdit_config.h"

namespace vdit {

struct CogVideoXConfig {
  int64_t num_attention_heads = 30;
  int64_t attention_head_dim = 64;
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  int64_t time_embed_dim = 512;
  int64_t text_embed_dim = 4096;
  int64_t num_layers = 30;
  int64_t patch_size = 2;
  int64_t max_text_seq_length = 226;  // the context must have exactly this many rows
  float norm_eps = 1e-5f;
  double spatial_interpolation_scale = 1.875;
  double temporal_interpolation_scale = 1.0;

  int64_t dim() const { return num_attention_heads * attention_head_dim; }
  // Throws vdit::Error naming the first field out of range.
  void validate() const;
  bool operator==(const CogVideoXConfig&) const = default;

  static CogVideoXConfig cogvideox_2b();  // the released model
};

// Every parameter in a fixed order: embeddings, blocks 0..L-1, final norms and projection.
std::vector<ParamSpec> cogvideox_parameter_specs(const CogVideoXConfig& config);

}  // namespace vdit
