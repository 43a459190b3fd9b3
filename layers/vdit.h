#pragma once
// The Wan2.1 text-to-video transformer assembled from its parameters (WAN21.md).
#include <memory>
#include <string>
#include <vector>

#include "layers/embeddings.h"
#include "layers/grid_tables_cache.h"
#include "layers/model.h"
#include "layers/parameter_map.h"
#include "layers/vdit_config.h"
#include "layers/wan_block.h"

namespace vdit {

// Checks that `params` holds exactly the config's parameters (plus optional temperatures)
// with the config's shapes; the error names the first missing, unexpected or misshapen key.
void check_wan_parameters(const VDiTConfig& config, const ParameterMap& params);

class VDiT : public Model {
 public:
  // Checks the parameters (check_wan_parameters) and builds the layers over them.
  VDiT(VDiTConfig config, ParameterMap params);

  // latents [B, in_dim, F, H, W], one timestep in [0, 1000] per sample, context
  // [B, L, text_dim] with L <= text_len. Returns the velocity [B, out_dim, F, H, W]. A probe
  // (diagnostics) sees every attention call.
  Tensor forward(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context,
                 AttentionProbe* probe = nullptr) const;

  // The forward pass in its three stages, for diagnostics that rerun single blocks.
  struct Embedded {
    Tensor tokens;   // [B, T, d], the first block's input
    Tensor e, e0;    // time embeddings: [B, d] for the head, [B, 6, d] for the blocks
    Tensor context;  // [B, text_len, d]
    RopeTables rope;
    std::array<int64_t, 3> grid{};  // tokens per (frame, height, width)
  };
  Embedded embed(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context) const;
  Tensor run_block(int index, const Tensor& x, const Embedded& embedded, AttentionProbe* probe = nullptr) const;
  Tensor run_head(const Tensor& x, const Embedded& embedded) const;  // -> velocity [B, out_dim, F, H, W]

  const VDiTConfig& config() const { return config_; }
  const ParameterMap& parameters() const override { return params_; }
  // Replaces a parameter's tensor (same shape) and rebuilds the layers that hold it; used to
  // make frozen weights trainable or to reinitialise them.
  void set_parameter(const std::string& key, Tensor value);
  // The same for many parameters at once (one rebuild).
  void set_parameters(const ParameterMap& values) override;
  const std::vector<WanBlock>& blocks() const { return blocks_; }
  // Moves every parameter to `device` and rebuilds the layers. On a CUDA device frozen
  // parameters are stored as bf16 and trainable ones stay float32 and keep requiring a gradient
  // (the README's precision table). The map's tensors are replaced: take parameter handles (an
  // optimizer's) after this call. Inputs must then be on the same device.
  void to(Device device) override;
  Device device() const override { return patch_embedding_.weight.device(); }
  // Frozen blocks after the first trainable one keep only their input for the backward pass
  // and run forward again during it (autograd/checkpoint.h): less memory, one more forward.
  void set_recompute_frozen_blocks(bool recompute) override { recompute_frozen_ = recompute; }

  // The seam (layers/model.h). Wan2.1's text is cross-attention context, not a stream: the
  // streams' text stays undefined, and a context_mask zeroes the padding rows (Wan pads with
  // zeros).
  ModelFacts facts() const override;
  Tensor velocity(const ModelInputs& inputs, AttentionProbe* probe) const override;
  std::unique_ptr<Stage> embed_stage(const ModelInputs& inputs) const override;
  TokenStreams block_stage(int index, const TokenStreams& in, const Stage& stage, AttentionProbe* probe) const override;
  Tensor head_stage(const TokenStreams& in, const Stage& stage) const override;
  std::vector<ParamSpec> parameter_specs() const override { return wan_parameter_specs(config_); }
  Tensor init_parameter(const std::string& key, const Shape& shape, Rng& rng) const override;
  std::string temperature_key(int block, AttentionKind kind) const override;
  std::vector<std::string> submodules() const override;
  bool in_submodule(const std::string& key_in_block, const std::string& sub) const override;
  bool in_head(const std::string& key) const override { return key.starts_with("head."); }

 private:
  void build_layers();

  VDiTConfig config_;
  ParameterMap params_;
  PatchEmbedding patch_embedding_;
  TextEmbedding text_embedding_;
  TimeEmbedding time_embedding_;
  std::vector<WanBlock> blocks_;
  Head head_;
  std::vector<bool> block_trainable_;  // a parameter of block i requires a gradient
  bool recompute_frozen_ = false;
  // The RoPE tables of the last grid, on the model's device: computed on the host once per grid.
  GridTablesCache<RopeTables, Device> rope_cache_;
  RopeTables rope_tables(const std::array<int64_t, 3>& grid) const;
};

}  // namespace vdit
