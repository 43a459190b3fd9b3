#include "data/hdf5_local_heap.h"

#include <cstring>

#include "autograd/check.h"

namespace vdit {

namespace {

constexpr uint64_t kFreeListEnd = 1;  // HDF5's H5HL_FREE_NULL

// HDF5 1.10 walks the heap's free list (each free block: the offset of the next, its own size)
// checking each offset against the heap's size but not for a loop: a block naming itself as the
// next made it allocate list nodes until memory ran out (found by fuzz/fuzz_latent_dataset.cpp).
// Blocks hold two lengths each, so a list longer than the heap has room for loops.
void check_free_list(const Hdf5RawFile& file, const std::vector<uint8_t>& heap, uint64_t head, uint64_t data_at,
                     const std::string& where) {
  const size_t l = file.length_width();
  const uint64_t most = heap.size() / (2 * l);
  uint64_t blocks = 0;
  for (uint64_t at = head; at != kFreeListEnd;) {
    VDIT_CHECK(at <= heap.size() && 2 * l <= heap.size() - at && ++blocks <= most,
               file.path() << ": " << where << ": its local heap's free list "
                           << (blocks > most ? "loops (more blocks than its " + std::to_string(heap.size()) + " bytes hold)"
                                             : "names a block at heap offset " + std::to_string(at) + " beyond its " +
                                                   std::to_string(heap.size()) + " bytes")
                           << " (heap data at byte offset " << file.offset(data_at) << "): a corrupt file");
    at = little_endian(heap, at, l);
  }
}

}  // namespace

std::vector<uint8_t> read_local_heap(const Hdf5RawFile& file, uint64_t address, const std::string& where) {
  // "HEAP", version 0, 3 reserved bytes, data segment size, free list offset, data segment address.
  const size_t a = file.address_width(), l = file.length_width();
  const std::vector<uint8_t> header = file.read(address, 8 + 2 * l + a, where + ": its local heap");
  VDIT_CHECK(std::memcmp(header.data(), "HEAP", 4) == 0 && header[4] == 0,
             file.path() << ": " << where << ": no local heap at byte offset " << file.offset(address));
  const uint64_t data_at = little_endian(header, 8 + 2 * l, a);
  std::vector<uint8_t> heap = file.read(data_at, little_endian(header, 8, l), where + ": its local heap's data");
  check_free_list(file, heap, little_endian(header, 8 + l, l), data_at, where);
  return heap;
}

bool name_in_heap(const std::vector<uint8_t>& heap, uint64_t offset) {
  return offset < heap.size() && std::memchr(heap.data() + offset, 0, heap.size() - offset) != nullptr;
}

}  // namespace vdit
