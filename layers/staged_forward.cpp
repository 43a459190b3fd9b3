#include "layers/staged_forward.h"

#include "autograd/checkpoint.h"

namespace vdit {

namespace {

// Both streams as one tensor [B, N d + L d_text] (checkpoint reruns a function of one tensor).
Tensor pack(const TokenStreams& s) {
  const int64_t batch = s.video.size(0);
  if (!s.text.defined()) return reshape(s.video, {batch, -1});
  return concat({reshape(s.video, {batch, -1}), reshape(s.text, {batch, -1})}, 1);
}

// `packed` cut back into streams of the shapes of `like` (text undefined where like's is).
TokenStreams unpack(const Tensor& packed, const Shape& video, const Shape& text) {
  if (text.empty()) return {reshape(packed, video), Tensor()};
  const std::vector<Tensor> parts = split(packed, 1, {numel(video) / video[0], numel(text) / text[0]});
  return {reshape(parts[0], video), reshape(parts[1], text)};
}

// Blocks with a parameter that requires a gradient.
std::vector<bool> trainable_blocks(const Model& model) {
  std::vector<bool> trainable(model.facts().num_blocks, false);
  const ParameterMap& params = model.parameters();
  for (const ParamSpec& spec : model.parameter_specs())
    if (spec.block >= 0 && params.at(spec.name).requires_grad()) trainable[spec.block] = true;
  return trainable;
}

}  // namespace

Tensor staged_velocity(const Model& model, const ModelInputs& inputs, AttentionProbe* probe, bool recompute) {
  const std::shared_ptr<const Model::Stage> stage = model.embed_stage(inputs);
  const bool may_recompute = recompute && !probe && !stage->differentiable;
  const std::vector<bool> trainable = may_recompute ? trainable_blocks(model) : std::vector<bool>();
  TokenStreams s = stage->streams;
  for (int i = 0; i < model.facts().num_blocks; ++i) {
    if (may_recompute && !trainable[i] && needs_grad({&s.video, &s.text})) {
      // The block's outputs' shapes are known once its forward ran, which checkpoint does at once.
      auto out_shapes = std::make_shared<std::pair<Shape, Shape>>();
      const Shape video = s.video.shape(), text = s.text.defined() ? s.text.shape() : Shape{};
      const Tensor out = checkpoint(
          [&model, stage, i, video, text, out_shapes](const Tensor& packed) {
            const TokenStreams y = model.block_stage(i, unpack(packed, video, text), *stage, nullptr);
            *out_shapes = {y.video.shape(), y.text.defined() ? y.text.shape() : Shape{}};
            return pack(y);
          },
          pack(s));
      s = unpack(out, out_shapes->first, out_shapes->second);
    } else {
      s = model.block_stage(i, s, *stage, probe);
    }
  }
  return model.head_stage(s, *stage);
}

}  // namespace vdit
