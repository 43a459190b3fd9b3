#pragma once
// The training data: samples of VAE latents and text-encoder context stored in .h5 files, one
// group per sample (any name) holding `latents` float32 [C, F, H, W] and `context` float32
// [L, text_dim], with an optional string attribute `prompt`. Samples are ordered by file, then
// by group name. Opening reads only shapes, so a dataset larger than memory costs nothing
// until a batch asks for its samples.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

struct LatentSample {
  Tensor latents;  // [C, F, H, W]
  Tensor context;  // [L, text_dim]
  std::string prompt;
};

class LatentDataset {
 public:
  // `paths`: .h5 files or directories (all *.h5 inside, sorted). Every error (no samples, a
  // group without latents or context, a wrong rank, C or text width differing from the first
  // sample's) names the file and the group.
  static LatentDataset open(const std::vector<std::string>& paths);

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  const Shape& latent_shape(int64_t i) const { return entry(i).latents; }
  const Shape& context_shape(int64_t i) const { return entry(i).context; }
  std::string where(int64_t i) const;  // "file.h5:/sample_000012", for messages
  // From disk (files stay small, so nothing is cached). A NaN or infinity in the latents or
  // context is an error naming the sample, the array and the index.
  LatentSample read(int64_t i) const;

 private:
  struct Entry {
    std::string file;
    std::string group;  // "/sample_000012"
    Shape latents;
    Shape context;
    std::string where() const { return file + ":" + group; }
  };
  const Entry& entry(int64_t i) const;

  std::vector<Entry> entries_;
};

// Writes `samples` as groups "sample_000000", "sample_000001", ... into `path`, complete or
// not at all (written as `path`.partial and renamed).
void write_latent_dataset(const std::string& path, const std::vector<LatentSample>& samples);

}  // namespace vdit
