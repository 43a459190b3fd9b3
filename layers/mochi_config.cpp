#include "layers/mochi_config.h"

#include "autograd/check.h"
#include "layers/family_params.h"

namespace vdit {

void MochiConfig::validate() const {
  check_config_size(patch_size, "patch_size", VDiTConfig::kMaxPatch);
  check_config_size(num_attention_heads, "num_attention_heads");
  check_config_size(attention_head_dim, "attention_head_dim");
  check_config_size(dim(), "num_attention_heads * attention_head_dim");
  check_config_size(num_layers, "num_layers");
  check_config_size(pooled_projection_dim, "pooled_projection_dim");
  check_config_size(in_channels, "in_channels");
  check_config_size(out_channels, "out_channels");
  check_config_size(text_embed_dim, "text_embed_dim");
  check_config_size(time_embed_dim, "time_embed_dim");
  check_config_size(max_sequence_length, "max_sequence_length");
  VDIT_CHECK(attention_head_dim % 2 == 0,
             "config: attention_head_dim " << attention_head_dim << " must be even for RoPE");
  VDIT_CHECK(time_embed_dim % 2 == 0, "config: time_embed_dim " << time_embed_dim << " must be even");
  VDIT_CHECK(text_embed_dim % kPoolHeads == 0, "config: text_embed_dim " << text_embed_dim
                                                                         << " must be a multiple of the pooler's "
                                                                         << kPoolHeads << " heads");
}

MochiConfig MochiConfig::mochi_1_preview() { return MochiConfig{}; }

std::vector<ParamSpec> mochi_parameter_specs(const MochiConfig& c) {
  const int64_t d = c.dim(), dc = c.pooled_projection_dim, t = c.text_embed_dim, p = c.patch_size;
  ParamSpecList s;
  s.tensor("patch_embed.proj.weight", {d, c.in_channels, p, p});
  s.tensor("patch_embed.proj.bias", {d});
  s.tensor("pos_frequencies", {3, c.num_attention_heads, c.attention_head_dim / 2});
  s.linear("time_embed.timestep_embedder.linear_1", d, c.time_embed_dim);
  s.linear("time_embed.timestep_embedder.linear_2", d, d);
  s.linear("time_embed.pooler.to_kv", 2 * t, t);
  s.linear("time_embed.pooler.to_q", t, t);
  s.linear("time_embed.pooler.to_out", d, t);
  s.linear("time_embed.caption_proj", dc, t);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i);
    const bool last = i == c.num_layers - 1;
    s.set_block(i);
    s.linear(b + ".norm1.linear", 4 * d, d);
    if (last)
      s.linear(b + ".norm1_context.linear_1", dc, d);
    else
      s.linear(b + ".norm1_context.linear", 4 * dc, d);
    for (const char* proj : {"to_q", "to_k", "to_v"}) s.linear(b + ".attn1." + proj, d, d, false);
    for (const char* proj : {"add_q_proj", "add_k_proj", "add_v_proj"}) s.linear(b + ".attn1." + proj, d, dc, false);
    for (const char* norm : {"norm_q", "norm_k", "norm_added_q", "norm_added_k"})
      s.tensor(b + ".attn1." + norm + ".weight", {c.attention_head_dim});
    s.linear(b + ".attn1.to_out.0", d, d);
    s.linear(b + ".ff.net.0.proj", 2 * c.ff_inner(), d, false);
    s.linear(b + ".ff.net.2", d, c.ff_inner(), false);
    if (last) continue;
    s.linear(b + ".attn1.to_add_out", dc, d);
    s.linear(b + ".ff_context.net.0.proj", 2 * c.ff_context_inner(), dc, false);
    s.linear(b + ".ff_context.net.2", dc, c.ff_context_inner(), false);
  }
  s.set_block(-1);
  s.linear("norm_out.linear", 2 * d, d);
  s.linear("proj_out", p * p * c.out_channels, d);
  return s.take();
}

}  // namespace vdit
