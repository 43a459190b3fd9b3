#pragma once
// Mochi-1's configuration in diffusers' names (MOCHI.md, "Config") and its parameters in the
// diffusers layout ("Parameter names").
#include <cstdint>
#include <vector>

#include "layers/vdit_config.h"

namespace vdit {

struct MochiConfig {
  int64_t patch_size = 2;
  int64_t num_attention_heads = 24;
  int64_t attention_head_dim = 128;
  int64_t num_layers = 48;
  int64_t pooled_projection_dim = 1536;  // width of the text stream
  int64_t in_channels = 12;
  int64_t out_channels = 12;  // config.json's null means in_channels
  int64_t text_embed_dim = 4096;
  int64_t time_embed_dim = 256;
  int64_t max_sequence_length = 256;

  static constexpr int64_t kPoolHeads = 8;  // the caption pooler's heads
  int64_t dim() const { return num_attention_heads * attention_head_dim; }
  int64_t ff_inner() const { return (4 * dim() * 2) / 3; }
  int64_t ff_context_inner() const { return (4 * pooled_projection_dim * 2) / 3; }
  // Throws vdit::Error naming the first field out of range.
  void validate() const;
  bool operator==(const MochiConfig&) const = default;

  static MochiConfig mochi_1_preview();  // the released 10B model
};

// Every parameter in a fixed order: embeddings, blocks 0..L-1 (the last without its text
// output layers), output norm and projection.
std::vector<ParamSpec> mochi_parameter_specs(const MochiConfig& config);

}  // namespace vdit
