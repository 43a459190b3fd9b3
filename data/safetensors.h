#pragma once
// safetensors checkpoints (WAN21.md "Checkpoint files"): one file memory-mapped and validated
// in full at open, a sharded checkpoint behind an index, and an atomic writer.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
// {dtype, shape, data_offsets:[begin, end]} (offsets from the end of the header) plus an
// optional "__metadata__" of strings, then the raw little-endian data.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16" or "F16"
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

// One safetensors file, memory-mapped (mmap, no copy of the file in memory).
class SafetensorsFile {
 public:
  struct Mapping;  // the mapped file (munmap on destruction); defined in safetensors.cpp

  // Validates the whole header against the file size; any defect is a vdit::Error naming the
  // file and the key or byte offset.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // header order
  const SafetensorsEntry* find(const std::string& name) const;  // null if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // F32 and BF16: Tensor::borrow over the mapping (zero copy; the tensor's owner keeps the
  // mapping alive). The mapping is private copy-on-write, so a weight updated in place never
  // reaches the file. F16: widened into a new owned float32 tensor. Unknown key: vdit::Error.
  Tensor tensor(const std::string& name) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  uint8_t* data_ = nullptr;  // start of the data section inside the (writable, private) mapping
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;  // name -> position in entries_
  std::map<std::string, std::string> metadata_;
};

// A checkpoint that may be sharded: `path` is a .safetensors file, a *.safetensors.index.json
// (weight_map: name -> file relative to the index), or a directory holding exactly one of
// those (an index is preferred when present).
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::string& path);

  std::vector<std::string> names() const;  // every tensor name, sorted
  const SafetensorsEntry& entry(const std::string& name) const;  // vdit::Error naming the key if absent
  Tensor tensor(const std::string& name) const;
  std::string file_of(const std::string& name) const;

 private:
  const SafetensorsFile& file(const std::string& name) const;

  std::string path_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> files_;  // name -> the file holding it
};

enum class SafetensorsDType { F32, BF16 };

// Writes the tensors, in the given order, as F32 or BF16 (float32 inputs rounded to nearest
// even; bf16 inputs copied) to `path` atomically: `path`.partial is written, fsynced and
// renamed. The header is padded with spaces to a multiple of 8 bytes, as the reference
// implementation does, so that the data section starts aligned.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       SafetensorsDType dtype,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace vdit
