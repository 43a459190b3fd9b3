#pragma once
// An HDF5 file's own bytes, for the guards that check what HDF5 1.10 would trust unchecked
// (data/hdf5_link_heap.h, data/hdf5_object_header.h). Opening one finds and reads the
// superblock, as HDF5 does, without HDF5: the guards run before HDF5 reads anything.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace vdit {

// Little-endian `width` bytes at `at` (bounds-checked by std::vector::at).
uint64_t little_endian(const std::vector<uint8_t>& bytes, size_t at, size_t width);

class Hdf5RawFile {
 public:
  // Throws vdit::Error naming `path` when it holds no HDF5 superblock it can read.
  explicit Hdf5RawFile(const std::string& path);

  const std::string& path() const { return path_; }
  // `count` bytes at file address `address` (relative to the base address, as HDF5's
  // addresses are), refused before allocating when they lie beyond the end of the file;
  // `where` names what is read.
  std::vector<uint8_t> read(uint64_t address, uint64_t count, const std::string& where) const;
  // The byte offset in the file of an address, for messages.
  uint64_t offset(uint64_t address) const { return base_ + address; }

  size_t address_width() const { return address_width_; }  // the superblock's "size of offsets"
  size_t length_width() const { return length_width_; }    // its "size of lengths"
  bool defined(uint64_t address) const;                    // not the all-ones "undefined address"
  uint64_t root_header() const { return root_header_; }
  uint64_t extension_header() const { return extension_header_; }  // undefined when absent

 private:
  std::string path_;
  mutable std::ifstream in_;
  uint64_t size_ = 0, base_ = 0;
  size_t address_width_ = 8, length_width_ = 8;
  uint64_t root_header_ = 0, extension_header_ = 0;
};

}  // namespace vdit
