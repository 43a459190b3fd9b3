#pragma once
// Which samples each training step sees. Samples are grouped by latent shape (a batch is one
// tensor, so its samples must agree), each group is cut into batches of batch_size in index
// order (a group's last, partial batch is kept), and every epoch visits the whole list of
// batches in an order shuffled with the run's data stream. The sampler keeps no position of
// its own: epoch, cursor and order are RunState's fields, so a resumed run draws the same
// batches the uninterrupted run would have.
#include <cstdint>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "data/latent_dataset.h"

namespace vdit {

class BatchSampler {
 public:
  BatchSampler(const LatentDataset& dataset, int64_t batch_size);  // error if batch_size < 1

  int64_t batches_per_epoch() const { return static_cast<int64_t>(batches_.size()); }

  // The sample indices of the next batch. Starts a new epoch (shuffling with `rng`) when
  // `order` is empty or used up; an epoch ending increments `epoch`.
  std::vector<int64_t> next(Rng& rng, int64_t& epoch, int64_t& cursor, std::vector<int64_t>& order) const;

 private:
  std::vector<std::vector<int64_t>> batches_;
};

struct Batch {
  Tensor latents;  // [B, C, F, H, W]
  Tensor context;  // [B, L_max, text_dim], each sample's context zero-padded to the longest
  // [B, L_max]: 1 for a real row, 0 for padding (a sample's own or the batch's). Undefined when
  // every row is real: no sample has a mask and all have the same L.
  Tensor context_mask;
  std::vector<int64_t> indices;
};

// Reads and stacks the samples `indices` (all of one latent shape). Zero-padding the context
// changes nothing for Wan, whose model zero-pads it to text_len anyway; a family that masks
// its text (Mochi) leaves the padding out through context_mask.
Batch collate(const LatentDataset& dataset, const std::vector<int64_t>& indices);

}  // namespace vdit
