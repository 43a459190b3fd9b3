#include "layers/cogvideox_config.h"

#include "autograd/check.h"
#include "layers/family_params.h"

namespace vdit {

void CogVideoXConfig::validate() const {
  check_config_size(num_attention_heads, "num_attention_heads");
  check_config_size(attention_head_dim, "attention_head_dim");
  check_config_size(dim(), "num_attention_heads * attention_head_dim");
  check_config_size(in_channels, "in_channels");
  check_config_size(out_channels, "out_channels");
  check_config_size(time_embed_dim, "time_embed_dim");
  check_config_size(text_embed_dim, "text_embed_dim");
  check_config_size(num_layers, "num_layers");
  check_config_size(patch_size, "patch_size", VDiTConfig::kMaxPatch);
  check_config_size(max_text_seq_length, "max_text_seq_length");
  // The positions are [temporal d/4 | column 3d/8 | row 3d/8], each half sines, half cosines.
  VDIT_CHECK(dim() % 16 == 0, "config: num_attention_heads * attention_head_dim = "
                                  << dim() << " must be a multiple of 16 for the sin-cos positions");
  VDIT_CHECK(norm_eps > 0.0f, "config: norm_eps must be positive, got " << norm_eps);
  VDIT_CHECK(spatial_interpolation_scale > 0.0 && temporal_interpolation_scale > 0.0,
             "config: spatial_interpolation_scale and temporal_interpolation_scale must be positive");
}

CogVideoXConfig CogVideoXConfig::cogvideox_2b() { return CogVideoXConfig{}; }

std::vector<ParamSpec> cogvideox_parameter_specs(const CogVideoXConfig& c) {
  const int64_t d = c.dim(), ted = c.time_embed_dim, p = c.patch_size;
  ParamSpecList s;
  s.tensor("patch_embed.proj.weight", {d, c.in_channels, p, p});
  s.tensor("patch_embed.proj.bias", {d});
  s.linear("patch_embed.text_proj", d, c.text_embed_dim);
  s.linear("time_embedding.linear_1", ted, d);
  s.linear("time_embedding.linear_2", ted, ted);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i);
    s.set_block(i);
    for (const char* norm : {".norm1", ".norm2"}) {
      s.linear(b + norm + ".linear", 6 * d, ted);
      s.norm(b + norm + ".norm", d);
    }
    for (const char* proj : {"to_q", "to_k", "to_v", "to_out.0"}) s.linear(b + ".attn1." + proj, d, d);
    s.norm(b + ".attn1.norm_q", c.attention_head_dim);
    s.norm(b + ".attn1.norm_k", c.attention_head_dim);
    s.linear(b + ".ff.net.0.proj", 4 * d, d);
    s.linear(b + ".ff.net.2", d, 4 * d);
  }
  s.set_block(-1);
  s.norm("norm_final", d);
  s.linear("norm_out.linear", 2 * d, ted);
  s.norm("norm_out.norm", d);
  s.linear("proj_out", p * p * c.out_channels, d);
  return s.take();
}

}  // namespace vdit
