#include "train/sampling.h"

#include "autograd/check.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "train/flow_matching.h"

namespace vdit {

Tensor sample(const VDiT& model, const Shape& latent_shape, const Tensor& context, const SamplingOptions& options,
              const std::function<void(int64_t, int64_t)>& progress) {
  NoGradScope no_grad;
  const VDiTConfig& c = model.config();
  VDIT_CHECK(latent_shape.size() == 4 && latent_shape[0] == c.in_dim,
             "sample: latents must be [" << c.in_dim << ", F, H, W], got " << to_string(latent_shape));
  VDIT_CHECK(options.steps >= 1, "sample: --steps must be at least 1");
  // Conditional and unconditional inputs go through the model as one batch of two. Zero rows
  // are exactly what the model pads a shorter context with, so the empty context is all zeros.
  const bool guided = context.defined() && options.guidance != 1.0;
  Tensor text = Tensor::zeros({guided ? 2 : 1, c.text_len, c.text_dim});
  if (context.defined()) {
    VDIT_CHECK(context.ndim() == 2 && context.size(1) == c.text_dim && context.size(0) <= c.text_len,
               "sample: context must be [L <= " << c.text_len << ", " << c.text_dim << "], got "
                                                << to_string(context.shape()));
    std::copy(context.data(), context.data() + context.numel(), text.data());
  }
  Shape batched = latent_shape;
  batched.insert(batched.begin(), 1);
  Rng rng(options.seed);
  const Device device = model.device();
  text = text.to(device);
  Tensor x = rng.normal_tensor(batched).to(device);
  for (int64_t i = 0; i < options.steps; ++i) {
    const double sigma = shift_sigma(1.0 - static_cast<double>(i) / options.steps, options.shift);
    const double next = shift_sigma(1.0 - static_cast<double>(i + 1) / options.steps, options.shift);
    Tensor v;
    if (guided) {
      // float32 before the difference: on a GPU the model's output is bf16.
      const Tensor both = model.forward(concat({x, x}, 0), {1000.0 * sigma, 1000.0 * sigma}, text).to_f32();
      const std::vector<Tensor> parts = chunk(both, 0, 2);  // conditional first
      v = add(parts[1], scale(sub(parts[0], parts[1]), static_cast<float>(options.guidance)));
    } else {
      v = model.forward(x, {1000.0 * sigma}, text).to_f32();
    }
    x = add(x, scale(v, static_cast<float>(next - sigma)));
    if (progress) progress(i + 1, options.steps);
  }
  return reshape(x, latent_shape).to(Device::cpu());
}

}  // namespace vdit
