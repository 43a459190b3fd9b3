#pragma once
// The messages of an HDF5 object header, read from the file's bytes (data/hdf5_raw_file.h)
// with every chunk and message bounds-checked: each message inside its chunk, each
// continuation chunk inside the file, no chunk read twice. HDF5 1.10 allocates a continuation
// chunk at the length the file claims before reading it (fuzz/fuzz_latent_dataset.cpp found one
// claiming 16 GiB in a 6 KiB file); reading the chunks here first refuses such a header before
// HDF5 loads it. Version 1 headers (the 1.6 format, what vditkit and h5py write by default)
// and version 2 ("OHDR", the 1.8 format) are both read.
#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5_raw_file.h"

namespace vdit {

struct HeaderMessage {
  uint16_t type;
  uint8_t flags;
  uint64_t address;           // of its data in the file
  std::vector<uint8_t> data;  // exactly its declared size, all inside its chunk
};

constexpr uint16_t kContinuationMessage = 0x10;

// The header at `address`; `where` names the object for errors ("object '/a'").
std::vector<HeaderMessage> read_object_header(const Hdf5RawFile& file, uint64_t address, const std::string& where);

}  // namespace vdit
