#pragma once
// The CogVideoX-2b transformer assembled from its diffusers-layout parameters (COGVIDEOX.md),
// with the staged forward (embed, blocks, head) that VDiT has.
#include <array>
#include <vector>

#include "layers/cogvideox_block.h"
#include "layers/diffusers_model.h"
#include "layers/embeddings.h"
#include "layers/grid_tables_cache.h"

namespace vdit {

// The 3D sin-cos positions added to the video tokens of a (frames, rows, columns) grid:
// [tokens, d] = [temporal d/4 | column 3d/8 | row 3d/8], each part [sin(pos om), cos(pos om)]
// with om_i = 10000^(-i / (width/2)); computed in float64.
Tensor cogvideox_positions(const CogVideoXConfig& config, const std::array<int64_t, 3>& grid);
// Token outputs [B, N, C * p * p] ordered (channel, row, column), channel slowest, to [B, C, F, H, W].
Tensor unpatchify_channel_major(const Tensor& tokens, const std::array<int64_t, 3>& grid, int64_t patch);

class CogVideoXModel : public DiffusersModel {
 public:
  // Checks that `params` holds exactly the config's parameters with their shapes.
  CogVideoXModel(CogVideoXConfig config, ParameterMap params);

  // What embed gives the blocks and the head: the first block's input (streams) and the rest.
  struct Embedded : Stage {
    Tensor conditioning;  // silu(emb) [B, time_embed_dim]
    std::array<int64_t, 3> grid{};
  };
  // latents [B, C, F, H, W]; one timestep per sample; context [B, max_text_seq_length,
  // text_embed_dim] exactly (CogVideoX masks nothing: padding rows are ordinary tokens).
  Embedded embed(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context) const;
  // A probe sees the block's joint attention.
  TokenStreams run_block(int index, const TokenStreams& streams, const Embedded& embedded,
                             AttentionProbe* probe = nullptr) const;
  Tensor run_head(const TokenStreams& streams, const Embedded& embedded) const;  // velocity [B, C_out, F, H, W]
  Tensor forward(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context) const;

  const CogVideoXConfig& config() const { return config_; }
  const ParameterMap& parameters() const override { return params_; }
  // Replaces parameters (same shapes; the optional temperatures joint_temperature_key(i) may be
  // added, [num_heads] or [1]) and rebuilds the layers.
  void set_parameters(const ParameterMap& values) override;
  const std::vector<CogVideoXBlock>& blocks() const { return blocks_; }
  // Moves every parameter to `device` as VDiT::to does (frozen ones as bf16 on a GPU).
  void to(Device device) override;
  // The seam (layers/model.h; velocity, initialisation and temperatures: DiffusersModel).
  ModelFacts facts() const override;
  std::unique_ptr<Stage> embed_stage(const ModelInputs& inputs) const override;
  TokenStreams block_stage(int index, const TokenStreams& in, const Stage& stage, AttentionProbe* probe) const override;
  Tensor head_stage(const TokenStreams& in, const Stage& stage) const override;
  std::vector<ParamSpec> parameter_specs() const override;
  std::vector<std::string> submodules() const override;
  bool in_submodule(const std::string& key_in_block, const std::string& sub) const override;
  bool in_head(const std::string& key) const override;
  Device device() const override { return patch_embed_.weight.device(); }

 private:
  void build_layers();

  CogVideoXConfig config_;
  ParameterMap params_;
  PatchEmbedding patch_embed_;
  Linear text_proj_, time_linear_1_, time_linear_2_, norm_out_linear_, proj_out_;
  LayerNorm norm_final_, norm_out_norm_;
  std::vector<CogVideoXBlock> blocks_;
  // The sin-cos positions of the last grid on the model's device: the same for every forward.
  GridTablesCache<Tensor, Device> positions_cache_;
};

}  // namespace vdit
