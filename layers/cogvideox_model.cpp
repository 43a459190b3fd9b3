#include "layers/cogvideox_model.h"

#include <cmath>

#include "autograd/check.h"
#include "layers/family_layers.h"
#include "layers/family_params.h"
#include "layers/wan_block.h"

namespace vdit {

Tensor cogvideox_positions(const CogVideoXConfig& c, const std::array<int64_t, 3>& grid) {
  const int64_t d = c.dim(), tokens = grid[0] * grid[1] * grid[2];
  Tensor out = Tensor::empty({tokens, d});
  // om_i = 10000^(-i / half) for a part of `width` columns, half = width / 2.
  auto frequencies = [](int64_t width) {
    std::vector<double> om(width / 2);
    for (size_t i = 0; i < om.size(); ++i)
      om[i] = std::pow(10000.0, -static_cast<double>(i) / static_cast<double>(om.size()));
    return om;
  };
  const std::vector<double> temporal = frequencies(d / 4), spatial = frequencies(3 * d / 8);
  // Writes [sin(pos om), cos(pos om)] from column `at` of a token's row.
  auto sincos = [](float* row, int64_t at, const std::vector<double>& om, double pos) {
    const int64_t half = static_cast<int64_t>(om.size());
    for (int64_t i = 0; i < half; ++i) {
      row[at + i] = static_cast<float>(std::sin(pos * om[i]));
      row[at + half + i] = static_cast<float>(std::cos(pos * om[i]));
    }
  };
  float* const rows = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < tokens; ++n) {
    const int64_t f = n / (grid[1] * grid[2]), h = n / grid[2] % grid[1], w = n % grid[2];
    float* row = rows + n * d;
    sincos(row, 0, temporal, static_cast<double>(f) / c.temporal_interpolation_scale);
    sincos(row, d / 4, spatial, static_cast<double>(w) / c.spatial_interpolation_scale);
    sincos(row, d / 4 + 3 * d / 8, spatial, static_cast<double>(h) / c.spatial_interpolation_scale);
  }
  return out;
}

Tensor unpatchify_channel_major(const Tensor& tokens, const std::array<int64_t, 3>& grid, int64_t patch) {
  const int64_t b = tokens.size(0);
  const Tensor cut = reshape(tokens, {b, grid[0], grid[1], grid[2], -1, patch, patch});
  return reshape(permute(cut, {0, 4, 1, 2, 5, 3, 6}), {b, -1, grid[0], grid[1] * patch, grid[2] * patch});
}

CogVideoXModel::CogVideoXModel(CogVideoXConfig config, ParameterMap params)
    : config_(std::move(config)), params_(std::move(params)) {
  config_.validate();
  check_parameters(cogvideox_parameter_specs(config_), params_,
                   "a CogVideoX-2b model with " + std::to_string(config_.num_layers) + " blocks",
                   joint_temperatures(config_.num_layers, config_.num_attention_heads));
  build_layers();
}

void CogVideoXModel::set_parameters(const ParameterMap& values) {
  replace_parameters(params_, values, joint_temperatures(config_.num_layers, config_.num_attention_heads));
  build_layers();
}

void CogVideoXModel::build_layers() {
  const ParameterMap& p = params_;
  const float eps = config_.norm_eps;
  patch_embed_ = frame_patch_embedding(p, "patch_embed.proj", config_.patch_size);
  text_proj_ = linear_from(p, "patch_embed.text_proj");
  time_linear_1_ = linear_from(p, "time_embedding.linear_1");
  time_linear_2_ = linear_from(p, "time_embedding.linear_2");
  blocks_.clear();
  for (int i = 0; i < config_.num_layers; ++i) blocks_.push_back(build_cogvideox_block(config_, p, i));
  norm_final_ = {parameter(p, "norm_final.weight"), parameter(p, "norm_final.bias"), eps};
  norm_out_linear_ = linear_from(p, "norm_out.linear");
  norm_out_norm_ = {parameter(p, "norm_out.norm.weight"), parameter(p, "norm_out.norm.bias"), eps};
  proj_out_ = linear_from(p, "proj_out");
}

void CogVideoXModel::to(Device device) {
  move_parameters(params_, device);
  build_layers();
}

CogVideoXModel::Embedded CogVideoXModel::embed(const Tensor& latents, const std::vector<double>& timesteps,
                                               const Tensor& context) const {
  const CogVideoXConfig& c = config_;
  check_model_inputs(latents, c.in_channels, timesteps, context, c.text_embed_dim);
  VDIT_CHECK(context.size(1) == c.max_text_seq_length,
             "context has " << context.size(1) << " rows; CogVideoX needs exactly max_text_seq_length "
                            << c.max_text_seq_length);
  Embedded out;
  out.grid = frame_patch_grid(latents, c.patch_size);
  const Tensor video = patch_embed_(latents);
  const Tensor positions =
      positions_cache_.get(out.grid, device(), [&] { return cogvideox_positions(c, out.grid).to(device()); });
  out.streams = {add(video, positions), text_proj_(context)};
  const Tensor s = timestep_sinusoid(timesteps, c.dim()).to(time_linear_1_.weight.device());
  out.conditioning = silu(time_linear_2_(silu(time_linear_1_(s))));
  out.differentiable = needs_grad({&out.conditioning});
  return out;
}

TokenStreams CogVideoXModel::run_block(int index, const TokenStreams& streams, const Embedded& embedded,
                                        AttentionProbe* probe) const {
  return blocks_.at(index)(streams, embedded.conditioning, probe);
}

Tensor CogVideoXModel::run_head(const TokenStreams& streams, const Embedded& embedded) const {
  // shift first, then scale (COGVIDEOX.md, "Output").
  const std::vector<Tensor> s = modulation_chunks(norm_out_linear_, embedded.conditioning, 2);
  const Tensor x = modulate(norm_out_norm_(norm_final_(streams.video)), s[0], s[1]);
  return unpatchify_channel_major(proj_out_(x), embedded.grid, config_.patch_size);
}

Tensor CogVideoXModel::forward(const Tensor& latents, const std::vector<double>& timesteps,
                               const Tensor& context) const {
  return velocity({latents, timesteps, context, Tensor()}, nullptr);
}

}  // namespace vdit
