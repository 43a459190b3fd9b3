#pragma once
// A small RAII door to HDF5 for what vditkit stores: float32 datasets by path, and scalar or
// small-array attributes on the root group (string attributes on any group). Every failure is
// a vdit::Error naming the file and the dataset or attribute. Reads are bounded: a file's
// ranks, extents, element counts, classes and sizes are checked against what is expected
// before anything is allocated, so a malformed or hostile file gets an error, not a crash.
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

class Hdf5RawFile;

class Hdf5File {
 public:
  enum class Mode { Read, Create };  // Create truncates
  Hdf5File(const std::string& path, Mode mode);
  ~Hdf5File();
  Hdf5File(const Hdf5File&) = delete;
  Hdf5File& operator=(const Hdf5File&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;  // a dataset or group at this path
  // Names of the datasets directly inside `group` ("/" for the root), sorted.
  std::vector<std::string> datasets(const std::string& group = "/") const;
  // Names of the groups directly inside `group`, sorted.
  std::vector<std::string> groups(const std::string& group = "/") const;
  Shape shape(const std::string& name) const;
  // A floating-point dataset of any width, converted to float32 by HDF5.
  Tensor read(const std::string& name) const;
  // The same, also accepting integers (a 0/1 mask, which h5py users often write as int64).
  Tensor read_numbers(const std::string& name) const;
  // A dataset holding one number, integer or floating point (a `timestep` written as 500).
  double read_number(const std::string& name) const;
  // Writes a float32 dataset (bf16 tensors are widened); creates intermediate groups.
  void write(const std::string& name, const Tensor& tensor);

  // `object` is the group holding the attribute (the root unless given).
  bool has_attribute(const std::string& name, const std::string& object = "/") const;
  int64_t read_int(const std::string& name) const;
  double read_double(const std::string& name) const;
  std::string read_string(const std::string& name, const std::string& object = "/") const;
  std::vector<int64_t> read_ints(const std::string& name) const;
  void write_int(const std::string& name, int64_t value);
  void write_double(const std::string& name, double value);
  void write_string(const std::string& name, const std::string& value, const std::string& object = "/");
  void write_ints(const std::string& name, const std::vector<int64_t>& values);
  // Closes the file, checking that HDF5 flushed it (a full disk may show only here); the
  // destructor closes an unclosed file without a check.
  void close();

 private:
  // HDF5 1.10 trusts a file's object headers and link name heaps: before it opens an object
  // of a file opened for reading, the object's header is checked from the file's bytes
  // (data/hdf5_header_messages.h), and a group's link names too (data/hdf5_link_heap.h).
  // Checks `group` and every group above it, each once.
  void check_names_along(const std::string& group) const;
  // Checks the header of the object `name` links to (a dataset, or a group's child) once.
  void check_header_of(const std::string& name) const;
  // The object header address `name` links to; soft and external links are refused.
  uint64_t link_address(const std::string& name) const;
  // Names of the objects of `type` (an H5O_type_t) directly inside `group`, sorted.
  std::vector<std::string> children(const std::string& group, int type) const;
  // Dataset `name`'s hid_t, checked and opened; names it when it is absent or not a dataset.
  int64_t open_dataset(const std::string& name) const;
  Tensor read_as_float32(const std::string& name, bool integers_too) const;

  std::string path_;
  int64_t id_ = -1;  // hid_t
  bool reading_ = false;
  std::unique_ptr<const Hdf5RawFile> raw_;  // the file's bytes, when reading
  mutable std::set<std::string> checked_groups_, checked_headers_;
};

// Creates `path` complete or not at all, durably (data/atomic_file.h): fill() writes
// `path`.partial, which is closed, synced and renamed into place (removed if anything fails).
void write_hdf5_atomically(const std::string& path, const std::function<void(Hdf5File&)>& fill);

}  // namespace vdit
