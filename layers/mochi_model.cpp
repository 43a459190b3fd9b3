#include "layers/mochi_model.h"

#include <cmath>

#include "autograd/check.h"
#include "layers/family_layers.h"
#include "layers/family_params.h"

namespace vdit {

Tensor CaptionPooler::operator()(const Tensor& text, const Tensor& mask) const {
  const int64_t batch = text.size(0), width = text.size(2), heads = MochiConfig::kPoolHeads;
  const Tensor real = mul(text, reshape(mask, {batch, -1, 1}));
  const Tensor pool = div(sum(real, {1}), sum(mask, {1}, true));  // mean of the real rows [B, T]
  const std::vector<Tensor> kv = chunk(to_kv(concat({reshape(pool, {batch, 1, width}), text}, 1)), 2, 2);
  // One query per sample, so plain products serve (the fused GPU attention takes head widths of
  // 64 and 128 only; the released pooler's are 4096 / 8 = 512).
  const Tensor q = reshape(to_q(pool), {batch, heads, 1, -1});
  const Tensor k = permute(split_heads(kv[0], heads), {0, 2, 3, 1});  // [B, n, hd, 1 + L]
  const Tensor v = permute(split_heads(kv[1], heads), {0, 2, 1, 3});  // [B, n, 1 + L, hd]
  // Padding keys sit 1e9 below the others: exactly zero mass after the softmax in float32.
  const Tensor keep = concat({ones_mask(batch, 1, mask), mask}, 1);
  const Tensor bias = reshape(scale(add_scalar(keep, -1.0f), 1e9f), {batch, 1, 1, -1});
  const float root_head_dim = std::sqrt(static_cast<float>(width / heads));
  const Tensor weights = softmax(add(scale(matmul(q, k), 1.0f / root_head_dim), bias));
  return to_out(reshape(matmul(weights, v), {batch, width}));
}

MochiModel::MochiModel(MochiConfig config, ParameterMap params)
    : config_(std::move(config)), params_(std::move(params)) {
  config_.validate();
  check_parameters(mochi_parameter_specs(config_), params_,
                   "a Mochi-1 model with " + std::to_string(config_.num_layers) + " blocks",
                   joint_temperatures(config_.num_layers, config_.num_attention_heads));
  build_layers();
}

void MochiModel::set_parameters(const ParameterMap& values) {
  replace_parameters(params_, values, joint_temperatures(config_.num_layers, config_.num_attention_heads));
  build_layers();
}

MochiRope MochiModel::rope(const std::array<int64_t, 3>& grid) const {
  const Tensor& frequencies = parameter(params_, "pos_frequencies");
  if (frequencies.requires_grad()) return mochi_rope(frequencies, grid);  // a function of a trained parameter
  return rope_cache_.get(grid, frequencies.storage(), [&] { return mochi_rope(frequencies, grid); });
}

void MochiModel::build_layers() {
  rope_cache_.clear();
  const ParameterMap& p = params_;
  patch_embed_ = frame_patch_embedding(p, "patch_embed.proj", config_.patch_size);
  time_linear_1_ = linear_from(p, "time_embed.timestep_embedder.linear_1");
  time_linear_2_ = linear_from(p, "time_embed.timestep_embedder.linear_2");
  pooler_ = {linear_from(p, "time_embed.pooler.to_kv"), linear_from(p, "time_embed.pooler.to_q"),
             linear_from(p, "time_embed.pooler.to_out")};
  caption_proj_ = linear_from(p, "time_embed.caption_proj");
  blocks_.clear();
  for (int i = 0; i < config_.num_layers; ++i) blocks_.push_back(build_mochi_block(config_, p, i));
  norm_out_ = linear_from(p, "norm_out.linear");
  proj_out_ = linear_from(p, "proj_out");
}

void MochiModel::to(Device device) {
  move_parameters(params_, device);
  build_layers();
}

MochiModel::CaptionMask MochiModel::checked_mask(const Tensor& context, const Tensor& context_mask) const {
  const int64_t batch = context.size(0), rows = context.size(1);
  if (!context_mask.defined()) return {ones_mask(batch, rows, patch_embed_.weight), false};
  VDIT_CHECK(context_mask.shape() == (Shape{batch, rows}),
             "context_mask must be [" << batch << ", " << rows << "], got " << to_string(context_mask.shape()));
  const std::vector<float> m = context_mask.to_vector();
  bool padded = false;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t real = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const float v = m[b * rows + i];
      VDIT_CHECK(v == 0.0f || v == 1.0f, "context_mask of sample " << b << " holds " << v << " at row " << i
                                                                   << "; only 0 (padding) and 1 (real) are allowed");
      real += v == 1.0f;
    }
    VDIT_CHECK(real > 0, "context_mask of sample " << b << " has no real row");
    padded = padded || real < rows;
  }
  return {context_mask.to_f32().to(patch_embed_.weight.device()), padded};
}

MochiModel::Embedded MochiModel::embed(const Tensor& latents, const std::vector<double>& timesteps,
                                       const Tensor& context, const Tensor& context_mask) const {
  const MochiConfig& c = config_;
  const int64_t batch = check_model_inputs(latents, c.in_channels, timesteps, context, c.text_embed_dim);
  VDIT_CHECK(context.size(1) <= c.max_sequence_length,
             "context has " << context.size(1) << " rows, more than max_sequence_length " << c.max_sequence_length);
  const CaptionMask mask = checked_mask(context, context_mask);
  Embedded out;
  out.streams.video = patch_embed_(latents);
  out.grid = frame_patch_grid(latents, c.patch_size);
  out.streams.text = caption_proj_(context);
  const Tensor s = timestep_sinusoid(timesteps, c.time_embed_dim).to(time_linear_1_.weight.device());
  const Tensor cond = add(time_linear_2_(silu(time_linear_1_(s))), pooler_(context, mask.rows));
  out.block_inputs.conditioning = silu(cond);
  out.block_inputs.rope = rope(out.grid);
  // Without padding the attention needs no key mask, which lets a GPU take cuDNN's fused kernel.
  if (mask.padded) {
    const int64_t tokens = out.streams.video.size(1);
    out.block_inputs.joint_mask = concat({ones_mask(batch, tokens, mask.rows), mask.rows}, 1);
    out.block_inputs.text_mask = reshape(mask.rows, {batch, -1, 1});
  }
  out.differentiable = needs_grad({&out.block_inputs.conditioning});
  return out;
}

TokenStreams MochiModel::run_block(int index, const TokenStreams& streams, const Embedded& embedded,
                                AttentionProbe* probe) const {
  return blocks_.at(index)(streams, embedded.block_inputs, probe);
}

Tensor MochiModel::run_head(const TokenStreams& streams, const Embedded& embedded) const {
  // scale first, then shift (MOCHI.md, "Output"); LayerNorm without affine, eps 1e-6.
  const std::vector<Tensor> s = modulation_chunks(norm_out_, embedded.block_inputs.conditioning, 2);
  const Tensor x = add(mul(layer_norm(streams.video, Tensor{}, Tensor{}, 1e-6f), add_scalar(s[0], 1.0f)), s[1]);
  return unpatchify(proj_out_(x), embedded.grid, {1, config_.patch_size, config_.patch_size});
}

Tensor MochiModel::forward(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context,
                           const Tensor& context_mask) const {
  return velocity({latents, timesteps, context, context_mask}, nullptr);
}

}  // namespace vdit
