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

std::string sample_group_name(size_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "/sample_%06zu", i);
  return name;
}

}  // namespace

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
                      file.has_attribute("prompt", e.group) ? file.read_string("prompt", e.group) : ""};
  // Batches are laid out from the shapes read at open; a file rewritten since must not overrun them.
  VDIT_CHECK(sample.latents.shape() == e.latents && sample.context.shape() == e.context,
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
      if (!s.prompt.empty()) file.write_string("prompt", s.prompt, group);
    }
  });
}

}  // namespace vdit
