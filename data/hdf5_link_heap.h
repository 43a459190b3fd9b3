#pragma once
// A guard for HDF5 1.10's old-style ("symbol table") groups. Their link names live in a local
// heap (data/hdf5_local_heap.h) as NUL-terminated strings, and HDF5 copies or compares a name
// from its offset without checking that a NUL comes before the heap ends: a corrupt heap made
// it read past its buffer (fuzz/fuzz_adapter.cpp found it, in H5Literate). Before vditkit
// looks up or lists names in such a group, this reads the group's local heap, B-tree and symbol
// nodes from the file itself and checks every name offset they hold. Groups with link messages
// (newer formats) store each name with its length and need no check.
#include <string>
#include <vector>

#include "data/hdf5_object_header.h"
#include "data/hdf5_raw_file.h"

namespace vdit {

// `header` holds the group's object header messages (data/hdf5_header_messages.h checked them);
// throws vdit::Error naming the file, `where` (the group) and the byte offset of what is wrong.
void check_link_name_heap(const Hdf5RawFile& file, const std::vector<HeaderMessage>& header, const std::string& where);

}  // namespace vdit
