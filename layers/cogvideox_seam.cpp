// What CogVideoXModel gives the model seam (layers/model.h).
#include "layers/cogvideox_model.h"
#include "layers/family_params.h"

namespace vdit {

namespace {

const CogVideoXModel::Embedded& embedded_of(const Model::Stage& stage) {
  return family_stage<CogVideoXModel::Embedded>(stage, "CogVideoX-2b");
}

}  // namespace

ModelFacts CogVideoXModel::facts() const {
  const CogVideoXConfig& c = config_;
  return {"cogvideox", static_cast<int>(c.num_layers), c.dim(), c.num_attention_heads, c.in_channels, c.out_channels,
          {1, c.patch_size, c.patch_size}, c.text_embed_dim, c.max_text_seq_length, true, true};
}

// CogVideoX masks nothing (COGVIDEOX.md): a context_mask is accepted and its padding rows stay
// ordinary tokens, as in the released pipeline.
std::unique_ptr<Model::Stage> CogVideoXModel::embed_stage(const ModelInputs& inputs) const {
  return std::make_unique<Embedded>(embed(inputs.latents, inputs.timesteps, inputs.context));
}

TokenStreams CogVideoXModel::block_stage(int index, const TokenStreams& in, const Stage& stage,
                                         AttentionProbe* probe) const {
  return run_block(index, in, embedded_of(stage), probe);
}

Tensor CogVideoXModel::head_stage(const TokenStreams& in, const Stage& stage) const {
  return run_head(in, embedded_of(stage));
}

std::vector<ParamSpec> CogVideoXModel::parameter_specs() const { return cogvideox_parameter_specs(config_); }

// COGVIDEOX.md, "Parameter names": norm1 and norm2 each hold a modulation linear and the
// LayerNorm both streams share.
std::vector<std::string> CogVideoXModel::submodules() const { return {"attn", "ffn", "modulation", "norms"}; }

bool CogVideoXModel::in_submodule(const std::string& name, const std::string& sub) const {
  if (sub == "attn") return name.starts_with("attn1.");
  if (sub == "ffn") return name.starts_with("ff.");
  if (sub == "modulation") return name.starts_with("norm1.linear.") || name.starts_with("norm2.linear.");
  if (sub == "norms")
    return name.starts_with("norm1.norm.") || name.starts_with("norm2.norm.") || name.starts_with("attn1.norm_");
  return false;
}

bool CogVideoXModel::in_head(const std::string& key) const {
  return key.starts_with("norm_final.") || key.starts_with("norm_out.") || key.starts_with("proj_out.");
}

}  // namespace vdit
