#include "layers/vdit_config.h"

#include "autograd/check.h"

namespace vdit {

void VDiTConfig::validate() const {
  auto positive = [](int64_t v, const char* name, int64_t max = kMaxSize) {
    VDIT_CHECK(v > 0, "config: " << name << " must be positive, got " << v);
    VDIT_CHECK(v <= max, "config: " << name << " " << v << " is larger than " << max);
  };
  positive(dim, "dim");
  positive(ffn_dim, "ffn_dim");
  positive(freq_dim, "freq_dim");
  positive(num_heads, "num_heads");
  positive(num_layers, "num_layers");
  positive(in_dim, "in_dim");
  positive(out_dim, "out_dim");
  positive(text_dim, "text_dim");
  positive(text_len, "text_len");
  for (int64_t p : patch_size) positive(p, "patch_size", kMaxPatch);
  VDIT_CHECK(dim % num_heads == 0, "config: dim " << dim << " is not divisible by num_heads " << num_heads);
  VDIT_CHECK(head_dim() % 2 == 0, "config: head_dim " << head_dim() << " must be even for RoPE");
  VDIT_CHECK(head_dim() / 2 >= 3, "config: head_dim " << head_dim() << " too small to split RoPE over 3 axes");
  VDIT_CHECK(freq_dim % 2 == 0, "config: freq_dim " << freq_dim << " must be even");
  VDIT_CHECK(eps > 0.0f, "config: eps must be positive, got " << eps);
  // Image-to-video adds an image embedder and a second cross-attention that vditkit does not
  // build; an unknown type would also not survive diffusers' config.json, which has no such key.
  VDIT_CHECK(model_type == "t2v",
             "config: model_type '" << model_type << "' is not supported (vditkit builds Wan2.1 text-to-video, 't2v')");
}

VDiTConfig VDiTConfig::wan_1_3b() { return VDiTConfig{}; }

VDiTConfig VDiTConfig::wan_14b() {
  VDiTConfig c;
  c.dim = 5120;
  c.ffn_dim = 13824;
  c.num_heads = 40;
  c.num_layers = 40;
  return c;
}

VDiTConfig VDiTConfig::tiny() {
  VDiTConfig c;
  c.dim = 128;
  c.ffn_dim = 256;
  c.freq_dim = 32;
  c.num_heads = 4;
  c.num_layers = 4;
  c.text_dim = 64;
  c.text_len = 32;
  return c;
}

VDiTConfig VDiTConfig::pixel_tiny() {
  VDiTConfig c = tiny();
  c.in_dim = 3;
  c.out_dim = 3;
  c.text_len = 16;
  return c;
}

VDiTConfig VDiTConfig::preset(const std::string& name) {
  if (name == "tiny") return tiny();
  if (name == "pixel-tiny") return pixel_tiny();
  if (name == "wan-1.3b") return wan_1_3b();
  if (name == "wan-14b") return wan_14b();
  VDIT_FAIL("unknown preset '" << name << "' (known: tiny, pixel-tiny, wan-1.3b, wan-14b)");
}

std::vector<ParamSpec> wan_block_parameter_specs(const VDiTConfig& c, int i) {
  const std::string p = "blocks." + std::to_string(i) + ".";
  const int64_t d = c.dim;
  std::vector<ParamSpec> specs;
  auto add = [&](const std::string& name, Shape shape) { specs.push_back({p + name, std::move(shape), i}); };
  add("modulation", {1, 6, d});
  for (const char* attn : {"self_attn", "cross_attn"}) {
    const std::string a = attn;
    for (const char* proj : {"q", "k", "v", "o"}) {
      add(a + "." + proj + ".weight", {d, d});
      add(a + "." + proj + ".bias", {d});
    }
    if (c.qk_norm) {
      add(a + ".norm_q.weight", {d});
      add(a + ".norm_k.weight", {d});
    }
    if (a == "self_attn" && c.cross_attn_norm) {
      add("norm3.weight", {d});
      add("norm3.bias", {d});
    }
  }
  add("ffn.0.weight", {c.ffn_dim, d});
  add("ffn.0.bias", {c.ffn_dim});
  add("ffn.2.weight", {d, c.ffn_dim});
  add("ffn.2.bias", {d});
  return specs;
}

std::string log_temperature_key(int block, const std::string& attention) {
  return "blocks." + std::to_string(block) + "." + attention + ".log_temperature";
}

std::vector<ParamSpec> wan_parameter_specs(const VDiTConfig& c) {
  const int64_t d = c.dim;
  std::vector<ParamSpec> specs = {
      {"patch_embedding.weight", {d, c.in_dim, c.patch_size[0], c.patch_size[1], c.patch_size[2]}},
      {"patch_embedding.bias", {d}},
      {"text_embedding.0.weight", {d, c.text_dim}},
      {"text_embedding.0.bias", {d}},
      {"text_embedding.2.weight", {d, d}},
      {"text_embedding.2.bias", {d}},
      {"time_embedding.0.weight", {d, c.freq_dim}},
      {"time_embedding.0.bias", {d}},
      {"time_embedding.2.weight", {d, d}},
      {"time_embedding.2.bias", {d}},
      {"time_projection.1.weight", {6 * d, d}},
      {"time_projection.1.bias", {6 * d}},
  };
  for (int i = 0; i < c.num_layers; ++i) {
    std::vector<ParamSpec> block = wan_block_parameter_specs(c, i);
    specs.insert(specs.end(), block.begin(), block.end());
  }
  specs.push_back({"head.modulation", {1, 2, d}});
  specs.push_back({"head.head.weight", {c.patch_volume() * c.out_dim, d}});
  specs.push_back({"head.head.bias", {c.patch_volume() * c.out_dim}});
  return specs;
}

}  // namespace vdit
