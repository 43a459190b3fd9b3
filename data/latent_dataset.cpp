#include "data/latent_dataset.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "autograd/check.h"
#include "data/file_list.h"
#include "data/finite_check.h"
#include "data/hdf5_file.h"

namespace vdit {

namespace {

namespace fs = std::filesystem;

// The .h5 files `paths` name: files as given, each directory replaced by its *.h5, sorted.
std::vector<std::string> h5_files(const std::vector<std::string>& paths) {
  VDIT_CHECK(!paths.empty(), "no dataset files given");
  return expand_directories(paths, [](const fs::path& p) { return p.extension() == ".h5"; }, ".h5 files");
}

// The shape of array `name` of the sample group `group`, which must have `rank` non-empty axes.
Shape sample_array_shape(const Hdf5File& file, const std::string& group, const std::string& name, size_t rank,
                         const char* layout) {
  const std::string where = file.path() + ":" + group;
  VDIT_CHECK(file.has(group + "/" + name), where << ": no dataset '" << name << "'");
  const Shape shape = file.shape(group + "/" + name);
  VDIT_CHECK(shape.size() == rank && std::all_of(shape.begin(), shape.end(), [](int64_t n) { return n > 0; }),
             where << ": '" << name << "' has shape " << to_string(shape) << ", expected " << layout
                   << " with no empty axis");
  return shape;
}

// One model reads every sample: its patch embedding fixes C and its text projection text_dim.
void check_same_width(const char* what, int64_t value, const std::string& where, int64_t first,
                      const std::string& first_where) {
  VDIT_CHECK(value == first, where << ": " << what << " " << value << ", but " << first_where << " has " << first);
}

// "/sample_000001/context_mask", or "/context_mask" for the root group.
std::string mask_object(const std::string& group) { return (group == "/" ? "" : group) + "/context_mask"; }

std::string mask_where(const std::string& file, const std::string& group) { return file + ":" + mask_object(group); }

// A mask has one entry per context row (checked at open from the shape, again when read).
void check_mask_shape(const Shape& mask, int64_t rows, const std::string& where) {
  VDIT_CHECK(mask == Shape{rows}, where << " has shape " << to_string(mask) << ", but its context has " << rows << " rows");
}

std::string sample_group_name(size_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "/sample_%06zu", i);
  return name;
}

}  // namespace

void check_context_mask(const Tensor& mask, int64_t rows, const std::string& where) {
  check_mask_shape(mask.shape(), rows, where);
  const std::vector<float> values = mask.to_vector();
  for (size_t i = 0; i < values.size(); ++i) {
    VDIT_CHECK(values[i] == 0.0f || values[i] == 1.0f,
               where << " holds " << values[i] << " at index [" << i << "], expected 1 (a real token) or 0 (padding)");
    VDIT_CHECK(i == 0 || values[i] <= values[i - 1],
               where << " holds 1 at index [" << i << "] after padding at index [" << i - 1
                     << "]: real tokens come first");
  }
  VDIT_CHECK(!values.empty() && values[0] == 1.0f,
             where << " holds no real token (index [0] is padding): a context needs at least one");
}

Tensor read_context_mask(const Hdf5File& file, const std::string& group, int64_t rows) {
  if (!file.has(mask_object(group))) return {};
  const Tensor mask = file.read_numbers(mask_object(group));
  check_context_mask(mask, rows, mask_where(file.path(), group));
  return mask;
}

void pad_context(LatentSample& sample, int64_t rows) {
  const int64_t have = sample.context.size(0), width = sample.context.size(1);
  VDIT_CHECK(have <= rows, "a context of " << have << " rows cannot be padded to " << rows);
  Tensor context = Tensor::zeros({rows, width});
  Tensor mask = Tensor::zeros({rows});
  const std::vector<float> values = sample.context.to_vector();
  std::copy(values.begin(), values.end(), context.data());
  if (sample.context_mask.defined()) {
    check_context_mask(sample.context_mask, have, "the context mask being padded");
    const std::vector<float> real = sample.context_mask.to_vector();
    std::copy(real.begin(), real.end(), mask.data());
  } else {
    std::fill_n(mask.data(), have, 1.0f);
  }
  sample.context = context;
  sample.context_mask = mask;
}

LatentDataset LatentDataset::open(const std::vector<std::string>& paths) {
  LatentDataset dataset;
  for (const std::string& path : h5_files(paths)) {
    const Hdf5File file(path, Hdf5File::Mode::Read);
    const std::vector<std::string> groups = file.groups();
    VDIT_CHECK(!groups.empty(), path << ": no samples (each sample is a group holding 'latents' and 'context')");
    for (const std::string& name : groups) {
      Entry e{path, "/" + name, {}, {}};
      e.latents = sample_array_shape(file, e.group, "latents", 4, "[C, F, H, W]");
      e.context = sample_array_shape(file, e.group, "context", 2, "[L, text_dim]");
      e.has_mask = file.has(mask_object(e.group));
      if (e.has_mask) check_mask_shape(file.shape(mask_object(e.group)), e.context[0], mask_where(path, e.group));
      if (!dataset.entries_.empty()) {
        const Entry& first = dataset.entries_.front();
        check_same_width("latent channels", e.latents[0], e.where(), first.latents[0], first.where());
        check_same_width("context width (text_dim)", e.context[1], e.where(), first.context[1], first.where());
      }
      dataset.entries_.push_back(std::move(e));
    }
  }
  return dataset;
}

const LatentDataset::Entry& LatentDataset::entry(int64_t i) const {
  VDIT_CHECK(i >= 0 && i < size(), "sample " << i << " is out of range: the dataset has " << size());
  return entries_[static_cast<size_t>(i)];
}

std::string LatentDataset::where(int64_t i) const { return entry(i).where(); }

LatentSample LatentDataset::read(int64_t i) const {
  const Entry& e = entry(i);
  const Hdf5File file(e.file, Hdf5File::Mode::Read);
  LatentSample sample{file.read(e.group + "/latents"), file.read(e.group + "/context"),
                      file.has_attribute("prompt", e.group) ? file.read_string("prompt", e.group) : "",
                      read_context_mask(file, e.group, e.context[0])};
  // Batches are laid out from the shapes read at open; a file rewritten since must not overrun them.
  VDIT_CHECK(sample.latents.shape() == e.latents && sample.context.shape() == e.context &&
                 sample.context_mask.defined() == e.has_mask,
             where(i) << ": changed since the dataset was opened");
  check_finite(sample.latents, where(i) + "/latents");
  check_finite(sample.context, where(i) + "/context");
  return sample;
}

void write_latent_dataset(const std::string& path, const std::vector<LatentSample>& samples) {
  write_hdf5_atomically(path, [&](Hdf5File& file) {
    for (size_t i = 0; i < samples.size(); ++i) {
      const LatentSample& s = samples[i];
      VDIT_CHECK(s.latents.defined() && s.latents.ndim() == 4 && s.context.defined() && s.context.ndim() == 2,
                 path << ": sample " << i << " needs latents [C, F, H, W] and context [L, text_dim]");
      const std::string group = sample_group_name(i);
      file.write(group + "/latents", s.latents);
      file.write(group + "/context", s.context);
      if (s.context_mask.defined()) {
        check_context_mask(s.context_mask, s.context.size(0), mask_where(path, group));
        file.write(mask_object(group), s.context_mask);
      }
      if (!s.prompt.empty()) file.write_string("prompt", s.prompt, group);
    }
  });
}

}  // namespace vdit
