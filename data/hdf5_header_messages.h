#pragma once
// The guard for HDF5 1.10's object headers. HDF5 decodes a header message from its bytes
// without checking it against the message's size: an attribute message whose dataspace size
// says 1,032 bytes in a 56-byte message made H5Aexists_by_name read past the header's buffer
// (fuzz/fuzz_adapter.cpp and fuzz/fuzz_model_h5.cpp found it, in H5O__msg_iterate_real), and a
// fill value or compact layout that claims more than it holds is copied at the claimed size.
// Before vditkit lets HDF5 open an object, this reads its header from the file itself
// (data/hdf5_object_header.h) and checks each message HDF5 may decode on vditkit's paths:
// every field inside its message (attributes: name, datatype, dataspace and data; datatypes,
// dataspaces of rank <= 32, fill values, layouts, filter pipelines, links, external files),
// and the headers of committed datatypes a message shares. Messages of other types are only
// held inside their chunk. Attributes kept in dense storage (a fractal heap, version 2
// headers with more than 8 attributes) are left to HDF5, which checksums those structures.
#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5_object_header.h"
#include "data/hdf5_raw_file.h"

namespace vdit {

// The messages of the object header at `address`, each checked; throws vdit::Error naming the
// file, `where` (the object), the message and the byte offset of what is wrong.
std::vector<HeaderMessage> check_object_header(const Hdf5RawFile& file, uint64_t address, const std::string& where);

}  // namespace vdit
