#include "layers/vdit.h"

#include "autograd/check.h"
#include "autograd/checkpoint.h"
#include "layers/family_params.h"
#include "layers/init.h"

namespace vdit {

namespace {

// Wan's optional parameters: the temperatures of every block's self- and cross-attention.
OptionalTemperatures wan_temperatures(const VDiTConfig& config) {
  OptionalTemperatures t{{}, config.num_heads};
  for (int i = 0; i < config.num_layers; ++i)
    for (const char* attention : {"self_attn", "cross_attn"}) t.keys.insert(log_temperature_key(i, attention));
  return t;
}

}  // namespace

void check_wan_parameters(const VDiTConfig& config, const ParameterMap& params) {
  check_parameters(wan_parameter_specs(config), params,
                   "a Wan2.1 model with " + std::to_string(config.num_layers) + " blocks", wan_temperatures(config));
}

VDiT::VDiT(VDiTConfig config, ParameterMap params) : config_(std::move(config)), params_(std::move(params)) {
  config_.validate();
  check_wan_parameters(config_, params_);
  build_layers();
}

void VDiT::set_parameter(const std::string& key, Tensor value) { set_parameters({{key, std::move(value)}}); }

void VDiT::set_parameters(const ParameterMap& values) {
  replace_parameters(params_, values, wan_temperatures(config_));
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
  move_parameters(params_, device);
  build_layers();
}

RopeTables VDiT::rope_tables(const std::array<int64_t, 3>& grid) const {
  return rope_cache_.get(grid, device(), [&] {
    const RopeTables host = make_rope_tables(grid, config_.head_dim());
    return RopeTables{host.cos.to(device()), host.sin.to(device())};
  });
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

namespace {

// The staged forward's state: Wan's embeddings, the first block's input moved into the streams.
struct WanStage : Model::Stage {
  VDiT::Embedded embedded;
};

const WanStage& wan_stage(const Model::Stage& stage) {
  const auto* wan = dynamic_cast<const WanStage*>(&stage);
  VDIT_CHECK(wan, "a Wan2.1 block was given another family's stage");
  return *wan;
}

// Wan pads a caption with zero rows: a mask's padding rows become zeros.
Tensor masked_context(const ModelInputs& inputs) {
  if (!inputs.context_mask.defined()) return inputs.context;
  VDIT_CHECK(inputs.context_mask.ndim() == 2 && inputs.context_mask.size(0) == inputs.context.size(0) &&
                 inputs.context_mask.size(1) == inputs.context.size(1),
             "context_mask must be [" << inputs.context.size(0) << ", " << inputs.context.size(1) << "], got "
                                      << to_string(inputs.context_mask.shape()));
  return mul(inputs.context, reshape(inputs.context_mask.to_f32().to(inputs.context.device()),
                                     {inputs.context.size(0), inputs.context.size(1), 1}));
}

}  // namespace

ModelFacts VDiT::facts() const {
  const VDiTConfig& c = config_;
  return {"wan2.1", static_cast<int>(c.num_layers), c.dim, c.num_heads, c.in_dim, c.out_dim, c.patch_size,
          c.text_dim, c.text_len, false, false};
}

Tensor VDiT::velocity(const ModelInputs& inputs, AttentionProbe* probe) const {
  return forward(inputs.latents, inputs.timesteps, masked_context(inputs), probe);
}

std::unique_ptr<Model::Stage> VDiT::embed_stage(const ModelInputs& inputs) const {
  auto stage = std::make_unique<WanStage>();
  stage->embedded = embed(inputs.latents, inputs.timesteps, masked_context(inputs));
  stage->differentiable = needs_grad({&stage->embedded.e0, &stage->embedded.context});
  stage->streams.video = std::move(stage->embedded.tokens);  // held once, so that it goes once used
  return stage;
}

TokenStreams VDiT::block_stage(int index, const TokenStreams& in, const Stage& stage, AttentionProbe* probe) const {
  return {run_block(index, in.video, wan_stage(stage).embedded, probe), Tensor()};
}

Tensor VDiT::head_stage(const TokenStreams& in, const Stage& stage) const {
  return run_head(in.video, wan_stage(stage).embedded);
}

Tensor VDiT::init_parameter(const std::string& key, const Shape& shape, Rng& rng) const {
  return init_wan_parameter(key, shape, rng);
}

std::string VDiT::temperature_key(int block, AttentionKind kind) const {
  if (kind == AttentionKind::Joint) return "";
  return log_temperature_key(block, kind == AttentionKind::Self ? "self_attn" : "cross_attn");
}

std::vector<std::string> VDiT::submodules() const { return {"self_attn", "cross_attn", "ffn", "modulation", "norms"}; }

bool VDiT::in_submodule(const std::string& name, const std::string& sub) const {
  if (sub == "norms")
    return name.starts_with("norm3.") || name.find(".norm_q.") != std::string::npos ||
           name.find(".norm_k.") != std::string::npos;
  if (sub == "self_attn" || sub == "cross_attn" || sub == "ffn") return name.starts_with(sub + ".");
  if (sub == "modulation") return name == "modulation";
  return false;
}

}  // namespace vdit
