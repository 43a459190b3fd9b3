#pragma once
// A guard for HDF5 1.10's old-style ("symbol table") groups. Their link names live in a local
// heap as NUL-terminated strings, and HDF5 copies or compares a name with strdup/strcmp from its
// offset without checking that a NUL comes before the heap ends: a corrupt heap made it read
// past its buffer (fuzz/fuzz_adapter.cpp found it, in H5Literate). Before vditkit looks up or
// lists names in such a group, this reads the group's object header, local heap, B-tree and
// symbol nodes from the file itself and checks every name offset they hold (HDF5's own check
// is only that an offset lies inside the heap). Groups with link messages (newer formats) store
// each name with its length and need no check.
#include <hdf5.h>

#include <string>

namespace vdit {

// Throws vdit::Error naming `file_path`, `group_name` and the byte offset of what is wrong.
void check_link_name_heap(hid_t group, const std::string& file_path, const std::string& group_name);

}  // namespace vdit
