#include "layers/vdit.h"

#include <set>

#include "autograd/check.h"
#include "autograd/checkpoint.h"

namespace vdit {

namespace {

// Keys of optional parameters: the temperatures, [num_heads] or [1].
bool is_optional_key(const VDiTConfig& config, const std::string& key) {
  for (int i = 0; i < config.num_layers; ++i)
    if (key == log_temperature_key(i, "self_attn") || key == log_temperature_key(i, "cross_attn")) return true;
  return false;
}

bool optional_shape_ok(const VDiTConfig& config, const Shape& shape) {
  return shape == Shape{config.num_heads} || shape == Shape{1};
}

}  // namespace

void check_wan_parameters(const VDiTConfig& config, const ParameterMap& params) {
  std::set<std::string> expected;
  for (const ParamSpec& spec : wan_parameter_specs(config)) {
    expected.insert(spec.name);
    auto it = params.find(spec.name);
    VDIT_CHECK(it != params.end(), "missing parameter '" << spec.name << "' (expected shape "
                                                          << to_string(spec.shape) << ")");
    VDIT_CHECK(it->second.shape() == spec.shape,
               "parameter '" << spec.name << "' has shape " << to_string(it->second.shape())
                             << " but the config needs " << to_string(spec.shape));
  }
  for (const auto& [key, tensor] : params) {
    if (expected.count(key)) continue;
    VDIT_CHECK(is_optional_key(config, key), "unexpected parameter '" << key << "' (not part of a Wan2.1 model with "
                                                                       << config.num_layers << " blocks)");
    VDIT_CHECK(optional_shape_ok(config, tensor.shape()),
               "parameter '" << key << "' has shape " << to_string(tensor.shape()) << " but temperatures are ["
                             << config.num_heads << "] (per head) or [1] (per block)");
  }
}


VDiT::VDiT(VDiTConfig config, ParameterMap params) : config_(std::move(config)), params_(std::move(params)) {
  config_.validate();
  check_wan_parameters(config_, params_);
  build_layers();
}

void VDiT::set_parameter(const std::string& key, Tensor value) { set_parameters({{key, std::move(value)}}); }

void VDiT::set_parameters(const ParameterMap& values) {
  for (const auto& [key, value] : values) {
    auto it = params_.find(key);
    if (it == params_.end() || is_optional_key(config_, key)) {
      VDIT_CHECK(is_optional_key(config_, key), "set_parameter: unknown parameter '" << key << "'");
      VDIT_CHECK(optional_shape_ok(config_, value.shape()), "set_parameter: '" << key << "' needs shape ["
                                                                               << config_.num_heads << "] or [1], got "
                                                                               << to_string(value.shape()));
    } else {
      VDIT_CHECK(value.shape() == it->second.shape(), "set_parameter: '" << key << "' needs shape "
                                                                          << to_string(it->second.shape()) << ", got "
                                                                          << to_string(value.shape()));
    }
  }
  for (const auto& [key, value] : values) params_[key] = value;
  build_layers();
}

void VDiT::build_layers() {
  const ParameterMap& p = params_;
  const VDiTConfig& c = config_;
  patch_embedding_ = {parameter(p, "patch_embedding.weight"), parameter(p, "patch_embedding.bias"), c.patch_size};
  text_embedding_ = {linear_from(p, "text_embedding.0"), linear_from(p, "text_embedding.2"), c.text_len};
  time_embedding_ = {linear_from(p, "time_embedding.0"), linear_from(p, "time_embedding.2"),
                     linear_from(p, "time_projection.1"), c.freq_dim};
  blocks_.clear();
  for (int i = 0; i < c.num_layers; ++i) blocks_.push_back(build_wan_block(c, p, i));
  block_trainable_.assign(c.num_layers, false);
  for (const auto& [key, value] : p)
    if (key.rfind("blocks.", 0) == 0 && value.requires_grad()) block_trainable_[std::stoi(key.substr(7))] = true;
  head_ = {parameter(p, "head.modulation"), {Tensor{}, Tensor{}, c.eps},
           {parameter(p, "head.head.weight"), parameter(p, "head.head.bias")}};
}

void VDiT::to(Device device) {
  for (auto& [key, value] : params_) {
    const bool trainable = value.requires_grad();
    Tensor moved = (device.is_cuda() && !trainable ? value.to_bf16() : value).to(device);
    if (trainable && !moved.requires_grad()) moved.set_requires_grad(true);
    value = moved;
  }
  build_layers();
}

RopeTables VDiT::rope_tables(const std::array<int64_t, 3>& grid) const {
  std::lock_guard<std::mutex> lock(rope_cache_->mutex);
  RopeCache& cache = *rope_cache_;
  if (!cache.tables.cos.defined() || cache.grid != grid || cache.device != device()) {
    const RopeTables host = make_rope_tables(grid, config_.head_dim());
    cache.grid = grid;
    cache.device = device();
    cache.tables = {host.cos.to(device()), host.sin.to(device())};
  }
  return cache.tables;
}

VDiT::Embedded VDiT::embed(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context) const {
  const VDiTConfig& c = config_;
  VDIT_CHECK(latents.ndim() == 5 && latents.size(1) == c.in_dim,
             "latents must be [B, " << c.in_dim << ", F, H, W], got " << to_string(latents.shape()));
  const int64_t batch = latents.size(0);
  VDIT_CHECK(static_cast<int64_t>(timesteps.size()) == batch,
             "got " << timesteps.size() << " timesteps for a batch of " << batch);
  VDIT_CHECK(context.ndim() == 3 && context.size(0) == batch && context.size(2) == c.text_dim,
             "context must be [" << batch << ", L, " << c.text_dim << "], got " << to_string(context.shape()));
  VDIT_CHECK(context.size(1) <= c.text_len,
             "context has " << context.size(1) << " tokens, more than text_len " << c.text_len);
  Embedded out;
  out.tokens = patch_embedding_(latents);
  out.grid = {latents.size(2) / c.patch_size[0], latents.size(3) / c.patch_size[1], latents.size(4) / c.patch_size[2]};
  out.rope = rope_tables(out.grid);
  const TimeEmbedding::Output time = time_embedding_(timesteps);
  out.e = time.e;
  out.e0 = time.e0;
  out.context = text_embedding_(context);
  return out;
}

Tensor VDiT::run_block(int index, const Tensor& x, const Embedded& embedded, AttentionProbe* probe) const {
  return blocks_.at(index)(x, embedded.e0, embedded.context, embedded.rope, probe);
}

Tensor VDiT::run_head(const Tensor& x, const Embedded& embedded) const {
  return unpatchify(head_(x, embedded.e), embedded.grid, config_.patch_size);
}

Tensor VDiT::forward(const Tensor& latents, const std::vector<double>& timesteps, const Tensor& context,
                     AttentionProbe* probe) const {
  const Embedded embedded = embed(latents, timesteps, context);
  // A frozen block's only input needing a gradient is then x: recomputing it is exact.
  const bool may_recompute = recompute_frozen_ && !probe && !embedded.e0.requires_grad() &&
                             !embedded.context.requires_grad();
  Tensor x = embedded.tokens;
  for (int i = 0; i < static_cast<int>(blocks_.size()); ++i) {
    if (may_recompute && !block_trainable_[i] && needs_grad({&x})) {
      const WanBlock* block = &blocks_[i];
      x = checkpoint([block, embedded](const Tensor& in) { return (*block)(in, embedded.e0, embedded.context, embedded.rope); }, x);
    } else {
      x = run_block(i, x, embedded, probe);
    }
  }
  return run_head(x, embedded);
}

}  // namespace vdit
