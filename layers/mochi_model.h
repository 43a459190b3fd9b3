#pragma once
// The Mochi-1 transformer assembled from its diffusers-layout parameters (MOCHI.md), with the
// staged forward (embed, blocks, head) that VDiT has.
#include <array>
#include <vector>

#include "layers/diffusers_model.h"
#include "layers/embeddings.h"
#include "layers/grid_tables_cache.h"
#include "layers/mochi_block.h"

namespace vdit {

// MOCHI.md "Conditioning" 2: one query, the mean of a sample's real text rows, attends over
// [mean; real rows] with kPoolHeads heads; to_out gives the pooled caption [B, d].
struct CaptionPooler {
  Linear to_kv, to_q, to_out;
  Tensor operator()(const Tensor& text, const Tensor& mask) const;  // text [B, L, T], mask [B, L]
};

class MochiModel : public DiffusersModel {
 public:
  // Checks that `params` holds exactly the config's parameters with their shapes.
  MochiModel(MochiConfig config, ParameterMap params);

  // What embed gives the blocks and the head: the first block's input (streams) and the rest.
  struct Embedded : Stage {
    MochiBlockInputs block_inputs;
    std::array<int64_t, 3> grid{};  // tokens per (frame, row, column)
  };
  // latents [B, C, F, H, W]; one timestep per sample, passed to the sinusoid as is; context
  // [B, L, text_embed_dim] with L <= max_sequence_length; context_mask [B, L] (1 = real row,
  // 0 = padding, at least one real row per sample) or undefined (every row real).
  Embedded embed(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context,
                 const Tensor& context_mask = {}) const;
  // A probe sees the block's joint attention.
  TokenStreams run_block(int index, const TokenStreams& streams, const Embedded& embedded,
                         AttentionProbe* probe = nullptr) const;
  Tensor run_head(const TokenStreams& streams, const Embedded& embedded) const;  // velocity [B, C_out, F, H, W]
  Tensor forward(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context,
                 const Tensor& context_mask = {}) const;

  const MochiConfig& config() const { return config_; }
  const ParameterMap& parameters() const override { return params_; }
  // Replaces parameters (same shapes; the optional temperatures joint_temperature_key(i) may be
  // added, [num_heads] or [1]) and rebuilds the layers.
  void set_parameters(const ParameterMap& values) override;
  const std::vector<MochiBlock>& blocks() const { return blocks_; }
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
  // Frozen pos_frequencies give the same tables to every forward of a grid (keyed by their
  // storage, so a move to another device or new values make them again).
  MochiRope rope(const std::array<int64_t, 3>& grid) const;
  // The caption's rows [B, L] on the model's device (all ones without a context_mask), and
  // whether any is padding.
  struct CaptionMask {
    Tensor rows;
    bool padded = false;
  };
  CaptionMask checked_mask(const Tensor& context, const Tensor& context_mask) const;

  MochiConfig config_;
  ParameterMap params_;
  PatchEmbedding patch_embed_;
  Linear time_linear_1_, time_linear_2_, caption_proj_, norm_out_, proj_out_;
  CaptionPooler pooler_;
  GridTablesCache<MochiRope, const void*> rope_cache_;
  std::vector<MochiBlock> blocks_;
};

}  // namespace vdit
