// What MochiModel gives the model seam (layers/model.h).
#include "layers/family_params.h"
#include "layers/mochi_model.h"

namespace vdit {

namespace {

const MochiModel::Embedded& embedded_of(const Model::Stage& stage) {
  return family_stage<MochiModel::Embedded>(stage, "Mochi-1");
}

}  // namespace

ModelFacts MochiModel::facts() const {
  const MochiConfig& c = config_;
  return {"mochi-1", static_cast<int>(c.num_layers), c.dim(), c.num_attention_heads, c.in_channels, c.out_channels,
          {1, c.patch_size, c.patch_size}, c.text_embed_dim, c.max_sequence_length, false, true};
}

std::unique_ptr<Model::Stage> MochiModel::embed_stage(const ModelInputs& inputs) const {
  return std::make_unique<Embedded>(embed(inputs.latents, inputs.timesteps, inputs.context, inputs.context_mask));
}

TokenStreams MochiModel::block_stage(int index, const TokenStreams& in, const Stage& stage, AttentionProbe* probe) const {
  return run_block(index, in, embedded_of(stage), probe);
}

Tensor MochiModel::head_stage(const TokenStreams& in, const Stage& stage) const {
  return run_head(in, embedded_of(stage));
}

std::vector<ParamSpec> MochiModel::parameter_specs() const { return mochi_parameter_specs(config_); }

// MOCHI.md, "Parameter names": attn1 holds both streams' projections and QK norms; norm1 and
// norm1_context are the modulation layers.
std::vector<std::string> MochiModel::submodules() const {
  return {"attn", "ffn", "ffn_context", "modulation", "norms"};
}

bool MochiModel::in_submodule(const std::string& name, const std::string& sub) const {
  if (sub == "attn") return name.starts_with("attn1.");
  if (sub == "ffn") return name.starts_with("ff.");
  if (sub == "ffn_context") return name.starts_with("ff_context.");
  if (sub == "modulation") return name.starts_with("norm1.") || name.starts_with("norm1_context.");
  if (sub == "norms") return name.starts_with("attn1.norm_");
  return false;
}

bool MochiModel::in_head(const std::string& key) const {
  return key.starts_with("norm_out.") || key.starts_with("proj_out.");
}

}  // namespace vdit
