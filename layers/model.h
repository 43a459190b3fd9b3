#pragma once
// The seam between a model family (Wan2.1, Mochi-1, CogVideoX-2b) and the rest of vditkit:
// what retraining, diagnostics, sampling and the commands use of a model. A family implements
// it in layers/ and registers itself in data/model_families.cpp; nothing else names a family.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/random.h"
#include "layers/attention_probe.h"
#include "layers/parameter_map.h"
#include "layers/token_streams.h"
#include "layers/vdit_config.h"

namespace vdit {

// One batch as every family takes it.
struct ModelInputs {
  Tensor latents;                 // [B, C, F, H, W]
  std::vector<double> timesteps;  // one per sample, in [0, 1000]
  Tensor context;                 // [B, L, text_dim]
  Tensor context_mask;            // [B, L]: 1 = real row, 0 = padding, real rows first; undefined: all real
};

// What generic code needs to know of a model's shape.
struct ModelFacts {
  std::string family;  // the registry's name: "wan2.1", "mochi-1", "cogvideox"
  int num_blocks = 0;
  int64_t dim = 0, num_heads = 0;
  int64_t in_channels = 0, out_channels = 0;
  std::array<int64_t, 3> patch{1, 1, 1};  // latent frames, rows, columns per token
  int64_t text_dim = 0, text_len = 0;     // context rows: at most text_len, or exactly
  bool exact_text_len = false;
  bool joint_attention = false;  // text and video share one attention (else self + cross)
};

// The attention a block's tokens attend each other with: Self (Wan2.1) or Joint (Mochi, CogVideoX).
inline AttentionKind main_attention(const ModelFacts& facts) {
  return facts.joint_attention ? AttentionKind::Joint : AttentionKind::Self;
}

class Model {
 public:
  // What a staged forward carries from the embedding to the blocks and the head: the first
  // block's input and whatever else the family's blocks read (time embeddings, RoPE, masks).
  struct Stage {
    TokenStreams streams;
    bool differentiable = false;  // something besides the streams requires a gradient
    virtual ~Stage() = default;
  };

  virtual ~Model() = default;
  virtual ModelFacts facts() const = 0;

  // The forward pass, whole (velocity [B, out_channels, F, H, W]) and in its three stages for
  // diagnostics and studies that rerun single blocks. A probe sees every attention call.
  virtual Tensor velocity(const ModelInputs& inputs, AttentionProbe* probe) const = 0;
  virtual std::unique_ptr<Stage> embed_stage(const ModelInputs& inputs) const = 0;
  virtual TokenStreams block_stage(int index, const TokenStreams& in, const Stage& stage,
                                   AttentionProbe* probe) const = 0;
  virtual Tensor head_stage(const TokenStreams& in, const Stage& stage) const = 0;

  // Parameters under the names of the family's released layout.
  virtual const ParameterMap& parameters() const = 0;
  // Replaces parameters (same shapes; optional ones such as temperatures may be added) and
  // rebuilds the layers that hold them.
  virtual void set_parameters(const ParameterMap& values) = 0;
  // Every parameter a model of this configuration must have, with the block it belongs to.
  virtual std::vector<ParamSpec> parameter_specs() const = 0;
  // A fresh float32 value for parameter `key` as the family initialises it (--init reinit).
  virtual Tensor init_parameter(const std::string& key, const Shape& shape, Rng& rng) const = 0;
  // The optional log-temperature parameter of block `block`'s attention of `kind`, or "" when
  // the family has no such attention (Wan: Self and Cross; Mochi, CogVideoX: Joint).
  virtual std::string temperature_key(int block, AttentionKind kind) const = 0;

  // --layers: the sub-module names a block has ("self_attn", "ffn", ...), whether parameter
  // `key_in_block` (its name after "<blocks>.<i>.") belongs to `sub`, and whether a parameter
  // outside the blocks belongs to the head (else to the embeddings).
  virtual std::vector<std::string> submodules() const = 0;
  virtual bool in_submodule(const std::string& key_in_block, const std::string& sub) const = 0;
  virtual bool in_head(const std::string& key) const = 0;

  // Moves every parameter to `device` (frozen ones as bf16 on a GPU; trainable ones stay
  // float32 and keep requiring a gradient) and rebuilds the layers.
  virtual void to(Device device) = 0;
  virtual Device device() const = 0;
  // Frozen blocks after the first trainable one keep only their input for the backward pass
  // and run forward again during it (autograd/checkpoint.h).
  virtual void set_recompute_frozen_blocks(bool recompute) = 0;
};

}  // namespace vdit
