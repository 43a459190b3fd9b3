#pragma once
// A local heap: the NUL-terminated names of an old-style group's links and of a dataset's
// external files. HDF5 1.10 copies or compares such a name with strdup/strcmp from its offset
// after checking only that the offset lies inside the heap, so a name the heap cuts short is
// read past its buffer; the guards check each name offset with name_in_heap first.
#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5_raw_file.h"

namespace vdit {

// The data segment of the local heap at `address`, refused when it is not one or lies beyond
// the end of the file (before anything of its claimed size is allocated).
std::vector<uint8_t> read_local_heap(const Hdf5RawFile& file, uint64_t address, const std::string& where);

// Whether a NUL-terminated name starts at `offset` and ends inside `heap`.
bool name_in_heap(const std::vector<uint8_t>& heap, uint64_t offset);

}  // namespace vdit
