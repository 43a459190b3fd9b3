#include "train/batch_sampler.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "autograd/check.h"

namespace vdit {

BatchSampler::BatchSampler(const LatentDataset& dataset, int64_t batch_size) {
  VDIT_CHECK(batch_size >= 1, "batch size must be at least 1, got " << batch_size);
  std::map<Shape, std::vector<int64_t>> by_shape;  // ordered, so the batch list is deterministic
  for (int64_t i = 0; i < dataset.size(); ++i) by_shape[dataset.latent_shape(i)].push_back(i);
  for (const auto& [shape, indices] : by_shape)
    for (size_t begin = 0; begin < indices.size(); begin += static_cast<size_t>(batch_size)) {
      const size_t end = std::min(indices.size(), begin + static_cast<size_t>(batch_size));
      batches_.emplace_back(indices.begin() + begin, indices.begin() + end);
    }
}

std::vector<int64_t> BatchSampler::next(Rng& rng, int64_t& epoch, int64_t& cursor, std::vector<int64_t>& order) const {
  const int64_t n = batches_per_epoch();
  if (!order.empty()) {
    // A resumed state must come from this dataset and batch size, or its order would name
    // batches that do not exist (or silently different ones).
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    VDIT_CHECK(sorted == all && cursor >= 0 && cursor <= n,
               "sampler state (order of " << order.size() << " batches, cursor " << cursor
                   << ") does not fit this dataset and batch size, which make " << n
                   << " batches per epoch: resume with the same data and batch size");
  }
  if (order.empty() || cursor == n) {
    if (!order.empty()) ++epoch;
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
    cursor = 0;
  }
  return batches_[order[cursor++]];
}

Batch collate(const LatentDataset& dataset, const std::vector<int64_t>& indices) {
  VDIT_CHECK(!indices.empty(), "cannot collate an empty batch");
  const Shape& latent_shape = dataset.latent_shape(indices[0]);
  const int64_t text_dim = dataset.context_shape(indices[0])[1];
  int64_t max_len = 0;
  bool all_real = true;  // no sample has a mask and all have the same length
  for (int64_t i : indices) {
    VDIT_CHECK(dataset.latent_shape(i) == latent_shape,
               dataset.where(i) << ": latents " << to_string(dataset.latent_shape(i)) << " cannot share a batch with "
                                << dataset.where(indices[0]) << "'s " << to_string(latent_shape));
    max_len = std::max(max_len, dataset.context_shape(i)[0]);
    all_real = all_real && !dataset.has_context_mask(i) &&
               dataset.context_shape(i)[0] == dataset.context_shape(indices[0])[0];
  }
  const int64_t batch_size = static_cast<int64_t>(indices.size());
  Shape stacked{batch_size};
  stacked.insert(stacked.end(), latent_shape.begin(), latent_shape.end());
  Batch batch{Tensor::empty(stacked), Tensor::zeros({batch_size, max_len, text_dim}),
              all_real ? Tensor() : Tensor::zeros({batch_size, max_len}), indices};
  const int64_t latent_size = numel(latent_shape);
  for (int64_t b = 0; b < batch_size; ++b) {
    const LatentSample sample = dataset.read(indices[b]);
    std::copy_n(sample.latents.data(), latent_size, batch.latents.data() + b * latent_size);
    std::copy_n(sample.context.data(), sample.context.numel(), batch.context.data() + b * max_len * text_dim);
    if (all_real) continue;
    float* mask = batch.context_mask.data() + b * max_len;
    if (sample.context_mask.defined())
      std::copy_n(sample.context_mask.data(), sample.context_mask.numel(), mask);
    else
      std::fill_n(mask, sample.context.size(0), 1.0f);
  }
  return batch;
}

}  // namespace vdit
