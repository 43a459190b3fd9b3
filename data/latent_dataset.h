#pragma once
// The training data: samples of VAE latents and text-encoder context stored in .h5 files, one
// group per sample (any name) holding `latents` float32 [C, F, H, W] and `context` float32
// [L, text_dim], with an optional string attribute `prompt` and an optional `context_mask` [L]
// (float or integer; 1 = a real token, 0 = padding, real tokens first, at least one; absent
// means every row is real), which keeps a text encoder's padding out of the families that mask
// it (Mochi). Samples are ordered by file, then by group name. Opening reads only shapes, so a
// dataset larger than memory costs nothing until a batch asks for its samples.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

struct LatentSample {
  Tensor latents;  // [C, F, H, W]
  Tensor context;  // [L, text_dim]
  std::string prompt;
  Tensor context_mask{};  // [L] of 0/1, real rows first; undefined: every row is real
};

class Hdf5File;

// Checks `mask` for a context of `rows` rows: shape [rows], values 0 or 1, no 1 after a 0, a 1
// at index 0. Errors name `where` (the mask's file and object) and the first bad index.
void check_context_mask(const Tensor& mask, int64_t rows, const std::string& where);
// The `context_mask` dataset of `group` ("/" for the root, as in a forward input), checked
// against a context of `rows` rows; undefined when the group has none.
Tensor read_context_mask(const Hdf5File& file, const std::string& group, int64_t rows);
// Zero-pads `sample`'s context to `rows` rows (a family that takes a fixed text length, such as
// CogVideoX's max_text_seq_length), its mask marking the added rows as padding. Error if the
// context has more rows.
void pad_context(LatentSample& sample, int64_t rows);

class LatentDataset {
 public:
  // `paths`: .h5 files or directories (all *.h5 inside, sorted). Every error (no samples, a
  // group without latents or context, a wrong rank, C or text width differing from the first
  // sample's) names the file and the group.
  static LatentDataset open(const std::vector<std::string>& paths);

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  const Shape& latent_shape(int64_t i) const { return entry(i).latents; }
  const Shape& context_shape(int64_t i) const { return entry(i).context; }
  bool has_context_mask(int64_t i) const { return entry(i).has_mask; }
  std::string where(int64_t i) const;  // "file.h5:/sample_000012", for messages
  // From disk (files stay small, so nothing is cached). A NaN or infinity in the latents or
  // context, or a bad mask (check_context_mask), is an error naming the sample, the array and
  // the index.
  LatentSample read(int64_t i) const;

 private:
  struct Entry {
    std::string file;
    std::string group;  // "/sample_000012"
    Shape latents;
    Shape context;
    bool has_mask = false;  // its length is checked at open, its values at read
    std::string where() const { return file + ":" + group; }
  };
  const Entry& entry(int64_t i) const;

  std::vector<Entry> entries_;
};

// Writes `samples` as groups "sample_000000", "sample_000001", ... into `path` (a context mask
// where a sample has one, checked first), complete or not at all (written as `path`.partial
// and renamed).
void write_latent_dataset(const std::string& path, const std::vector<LatentSample>& samples);

}  // namespace vdit
