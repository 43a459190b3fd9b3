#include "data/hdf5_local_heap.h"

#include <cstring>

#include "autograd/check.h"

namespace vdit {

std::vector<uint8_t> read_local_heap(const Hdf5RawFile& file, uint64_t address, const std::string& where) {
  // "HEAP", version 0, 3 reserved bytes, data segment size, free list offset, data segment address.
  const size_t a = file.address_width(), l = file.length_width();
  const std::vector<uint8_t> header = file.read(address, 8 + 2 * l + a, where + ": its local heap");
  VDIT_CHECK(std::memcmp(header.data(), "HEAP", 4) == 0 && header[4] == 0,
             file.path() << ": " << where << ": no local heap at byte offset " << file.offset(address));
  return file.read(little_endian(header, 8 + 2 * l, a), little_endian(header, 8, l), where + ": its local heap's data");
}

bool name_in_heap(const std::vector<uint8_t>& heap, uint64_t offset) {
  return offset < heap.size() && std::memchr(heap.data() + offset, 0, heap.size() - offset) != nullptr;
}

}  // namespace vdit
