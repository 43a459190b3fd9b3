#include "diagnostics/probe_set.h"

#include "autograd/check.h"
#include "autograd/random.h"

namespace vdit {

ProbeSet probe_set(const ModelFacts& c, const LatentDataset& data, int64_t probe_samples, const char* who) {
  const int64_t samples = std::min(probe_samples, data.size());
  VDIT_CHECK(samples > 0, who << ": no probe samples (the dataset is empty or --probe-samples is 0)");
  const Shape& first = data.latent_shape(0);
  for (int64_t s = 1; s < samples; ++s)
    VDIT_CHECK(data.latent_shape(s) == first, who << ": probe samples must share one latent shape; "
                                                  << data.where(s) << " is " << to_string(data.latent_shape(s))
                                                  << ", " << data.where(0) << " is " << to_string(first));
  return {samples, TokenGrid{first[1] / c.patch[0], first[2] / c.patch[1], first[3] / c.patch[2]}};
}

Tensor probe_latents(const LatentSample& sample, int64_t s, double sigma, uint64_t noise_seed) {
  Shape shape = sample.latents.shape();
  shape.insert(shape.begin(), 1);
  Rng rng(noise_seed + static_cast<uint64_t>(s));
  const Tensor noise = rng.normal_tensor(shape);
  return add(scale(reshape(sample.latents, shape), static_cast<float>(1.0 - sigma)), scale(noise, static_cast<float>(sigma)));
}

ModelInputs sample_inputs(const Tensor& latents, double timestep, const LatentSample& sample, Device device) {
  const int64_t rows = sample.context.size(0);
  return {latents.to(device), {timestep}, reshape(sample.context, {1, rows, sample.context.size(1)}).to(device),
          sample.context_mask.defined() ? reshape(sample.context_mask, {1, rows}).to(device) : Tensor()};
}

std::unique_ptr<Model::Stage> embed_probe(const Model& model, const LatentSample& sample, int64_t s, double sigma,
                                          uint64_t noise_seed) {
  return model.embed_stage(
      sample_inputs(probe_latents(sample, s, sigma, noise_seed), 1000.0 * sigma, sample, model.device()));
}

double sum_squared_difference(const Tensor& a, const Tensor& b) {
  if (a.is_cuda()) return sum_all(square(b.defined() ? sub(a.to_f32(), b.to_f32()) : a.to_f32())).item();
  const std::vector<float> x = a.to_vector(), y = b.defined() ? b.to_vector() : std::vector<float>(x.size(), 0.0f);
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
  return sum;
}

}  // namespace vdit
