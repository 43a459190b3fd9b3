#pragma once
// The Wan2.1 transformer's configuration and the names and shapes of its parameters in the
// original (released) key layout. WAN21.md, "Configs" and "Parameters".
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

struct VDiTConfig {
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t freq_dim = 256;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  int64_t in_dim = 16;
  int64_t out_dim = 16;
  int64_t text_dim = 4096;
  int64_t text_len = 512;
  std::array<int64_t, 3> patch_size{1, 2, 2};  // (frames, height, width)
  float eps = 1e-6f;
  bool qk_norm = true;
  bool cross_attn_norm = true;
  std::string model_type = "t2v";

  // Bounds that keep every parameter's element count within int64 (a malformed config must
  // get an error, not an overflow): sizes up to 2^20, patch sides up to 64.
  static constexpr int64_t kMaxSize = int64_t{1} << 20, kMaxPatch = 64;

  int64_t head_dim() const { return dim / num_heads; }
  int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }
  // Throws vdit::Error naming the first field that is out of range or inconsistent.
  void validate() const;
  bool operator==(const VDiTConfig&) const = default;

  static VDiTConfig wan_1_3b();
  static VDiTConfig wan_14b();
  // A small model of the same architecture for demos and tests (about 1M parameters).
  static VDiTConfig tiny();
  // tiny in pixel space: RGB frames in [-1, 1] (in_dim = out_dim = 3), 16 caption words.
  static VDiTConfig pixel_tiny();
  // "tiny", "pixel-tiny", "wan-1.3b" or "wan-14b"; vdit::Error listing them otherwise.
  static VDiTConfig preset(const std::string& name);
};

struct ParamSpec {
  std::string name;  // original Wan key, e.g. "blocks.3.self_attn.q.weight"
  Shape shape;
  int block = -1;  // block index, or -1 for parameters outside the blocks
};

// Every parameter of the model in a fixed order (embeddings, blocks 0..L-1, head).
std::vector<ParamSpec> wan_parameter_specs(const VDiTConfig& config);
// The parameters of block `i` only, in the same order.
std::vector<ParamSpec> wan_block_parameter_specs(const VDiTConfig& config, int i);
// The optional softmax temperature of block i's self- or cross-attention (`attention` is
// "self_attn" or "cross_attn"), stored as log tau: [num_heads] (one per head) or [1] (one for
// the block). Not part of Wan2.1; absent means tau = 1.
std::string log_temperature_key(int block, const std::string& attention = "self_attn");

}  // namespace vdit
