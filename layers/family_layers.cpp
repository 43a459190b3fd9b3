#include "layers/family_layers.h"

#include "autograd/check.h"

namespace vdit {

Linear unbiased_linear_from(const ParameterMap& params, const std::string& prefix) {
  return {parameter(params, prefix + ".weight"), Tensor{}};
}

std::vector<Tensor> modulation_chunks(const Linear& layer, const Tensor& conditioning, int count) {
  const Tensor m = layer(conditioning);
  return chunk(reshape(m, {m.size(0), 1, m.size(1)}), 2, count);
}

Tensor split_heads(const Tensor& x, int64_t heads) { return reshape(x, {x.size(0), x.size(1), heads, -1}); }

Tensor merge_heads(const Tensor& x) { return reshape(x, {x.size(0), x.size(1), -1}); }

PatchEmbedding frame_patch_embedding(const ParameterMap& params, const std::string& prefix, int64_t patch) {
  return {parameter(params, prefix + ".weight"), parameter(params, prefix + ".bias"), {1, patch, patch}};
}

std::array<int64_t, 3> frame_patch_grid(const Tensor& latents, int64_t patch) {
  return {latents.size(2), latents.size(3) / patch, latents.size(4) / patch};
}

int64_t check_model_inputs(const Tensor& latents, int64_t channels, const std::vector<double>& timesteps,
                           const Tensor& context, int64_t text_dim) {
  VDIT_CHECK(latents.ndim() == 5 && latents.size(1) == channels,
             "latents must be [B, " << channels << ", F, H, W], got " << to_string(latents.shape()));
  const int64_t batch = latents.size(0);
  VDIT_CHECK(static_cast<int64_t>(timesteps.size()) == batch,
             "got " << timesteps.size() << " timesteps for a batch of " << batch);
  VDIT_CHECK(context.ndim() == 3 && context.size(0) == batch && context.size(2) == text_dim,
             "context must be [" << batch << ", L, " << text_dim << "], got " << to_string(context.shape()));
  return batch;
}

Tensor ones_mask(int64_t batch, int64_t length, const Tensor& like) {
  return Tensor::full({batch, length}, 1.0f).to(like.device());
}

}  // namespace vdit
