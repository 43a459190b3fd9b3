#include "train/sampling.h"

#include <algorithm>

#include "autograd/check.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "train/flow_matching.h"

namespace vdit {

bool is_guided(const Tensor& context, const SamplingOptions& options) {
  return context.defined() && options.guidance != 1.0;
}

SamplingText sampling_text(const ModelFacts& c, const Tensor& context, bool guided, Device device) {
  const int64_t rows = guided ? 2 : 1;
  Tensor text = Tensor::zeros({rows, c.text_len, c.text_dim});
  Tensor mask = Tensor::zeros({rows, c.text_len});
  int64_t real = 1;
  if (context.defined()) {
    VDIT_CHECK(context.ndim() == 2 && context.size(1) == c.text_dim && context.size(0) <= c.text_len,
               "sample: context must be [L <= " << c.text_len << ", " << c.text_dim << "], got "
                                                << to_string(context.shape()));
    std::copy(context.data(), context.data() + context.numel(), text.data());
    real = std::max<int64_t>(context.size(0), 1);
  }
  std::fill(mask.data(), mask.data() + real, 1.0f);
  mask.data()[(rows - 1) * c.text_len] = 1.0f;  // the empty context's one row
  return {text.to(device), mask.to(device)};
}

std::vector<Tensor> sample_lockstep(const Model& model, const Shape& latent_shape, int64_t streams, bool guided,
                                    const SamplingOptions& options, const LockstepDenoiser& denoise,
                                    const std::function<void(int64_t, int64_t)>& progress) {
  NoGradScope no_grad;
  const int64_t channels = model.facts().in_channels;
  VDIT_CHECK(latent_shape.size() == 4 && latent_shape[0] == channels,
             "sample: latents must be [" << channels << ", F, H, W], got " << to_string(latent_shape));
  VDIT_CHECK(options.steps >= 1, "sample: --steps must be at least 1");
  Shape batched = latent_shape;
  batched.insert(batched.begin(), 1);
  Rng rng(options.seed);
  std::vector<Tensor> x(streams, rng.normal_tensor(batched).to(model.device()));
  for (int64_t i = 0; i < options.steps; ++i) {
    const double sigma = shift_sigma(1.0 - static_cast<double>(i) / options.steps, options.shift);
    const double next = shift_sigma(1.0 - static_cast<double>(i + 1) / options.steps, options.shift);
    // Conditional and unconditional inputs go through the model as one batch of two.
    std::vector<Tensor> inputs;
    for (const Tensor& xs : x) inputs.push_back(guided ? concat({xs, xs}, 0) : xs);
    const std::vector<Tensor> outputs = denoise(inputs, std::vector<double>(guided ? 2 : 1, 1000.0 * sigma), i);
    VDIT_CHECK(static_cast<int64_t>(outputs.size()) == streams, "sample: the denoiser returned " << outputs.size()
                                                                   << " outputs for " << streams << " streams");
    for (int64_t s = 0; s < streams; ++s) {
      // float32 before the difference: on a GPU the model's output is bf16.
      const Tensor out = outputs[s].to_f32();
      Tensor v = out;
      if (guided) {
        const std::vector<Tensor> parts = chunk(out, 0, 2);  // conditional first
        v = add(parts[1], scale(sub(parts[0], parts[1]), static_cast<float>(options.guidance)));
      }
      x[s] = add(x[s], scale(v, static_cast<float>(next - sigma)));
    }
    if (progress) progress(i + 1, options.steps);
  }
  std::vector<Tensor> samples;
  for (const Tensor& xs : x) samples.push_back(reshape(xs, latent_shape).to(Device::cpu()));
  return samples;
}

Tensor sample(const Model& model, const Shape& latent_shape, const Tensor& context, const SamplingOptions& options,
              const std::function<void(int64_t, int64_t)>& progress, AttentionProbe* probe) {
  const bool guided = is_guided(context, options);
  const SamplingText text = sampling_text(model.facts(), context, guided, model.device());
  const LockstepDenoiser denoise = [&](const std::vector<Tensor>& inputs, const std::vector<double>& timesteps, int64_t) {
    return std::vector<Tensor>{model.velocity({inputs[0], timesteps, text.context, text.mask}, probe)};
  };
  return sample_lockstep(model, latent_shape, 1, guided, options, denoise, progress).front();
}

Tensor sample_pixels(const Tensor& sample) {
  Tensor pixels = Tensor::empty(sample.shape());
  for (int64_t i = 0; i < sample.numel(); ++i)
    pixels.data()[i] = std::clamp((sample.data()[i] + 1.0f) * 0.5f, 0.0f, 1.0f);
  return pixels;
}

}  // namespace vdit
