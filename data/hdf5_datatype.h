#pragma once
// The encoded length of an HDF5 datatype (a datatype message, or the datatype inside an
// attribute message), read field by field inside its message (data/hdf5_message_fields.h).
// HDF5 1.10 decodes a datatype without its message's size: a compound's member names with
// strdup, an enum's values, nested member types, all read as far as the encoding says. Each
// field is checked here first, and the sizes HDF5 later converts data with are held to what
// they must be: a member inside its compound, an array the size of its elements, a
// variable-length element the size of its global heap reference.
#include <cstdint>

#include "data/hdf5_message_fields.h"

namespace vdit {

struct Hdf5Datatype {
  int type_class;     // 0 integer, 1 float, 2 time, 3 string, ..., 6 compound, 9 variable-length, 10 array
  uint64_t size = 0;  // bytes per element in the file
};

// Reads the datatype at `fields`' position and moves past it.
Hdf5Datatype read_datatype(MessageFields& fields);

}  // namespace vdit
