#include "data/hdf5_link_heap.h"

#include <cstdint>
#include <cstring>

#include "autograd/check.h"
#include "data/hdf5_local_heap.h"

namespace vdit {

namespace {

constexpr uint16_t kSymbolTableMessage = 0x11;

// Every name offset the group's B-tree (its keys) and symbol nodes (their entries) hold must start
// a NUL-terminated string inside `heap`: those are the offsets HDF5 copies or compares from.
class NameOffsetWalk {
 public:
  NameOffsetWalk(const Hdf5RawFile& file, const std::vector<uint8_t>& heap, const std::string& where)
      : file_(file), a_(file.address_width()), l_(file.length_width()), heap_(heap), where_(where) {}

  void node(uint64_t address, int depth) {
    VDIT_CHECK(depth <= kMaxDepth && ++nodes_ <= kMaxNodes,
               file_.path() << ": " << where_ << ": the group's B-tree is deeper than " << kMaxDepth
                            << " levels or has more than " << kMaxNodes << " nodes (byte offset "
                            << file_.offset(address) << ")");
    // "TREE", node type (0: group), level, entries used, left and right siblings, then
    // key 0, child 0, key 1, ..., child n-1, key n.
    const size_t fixed = 8 + 2 * a_;
    const std::vector<uint8_t> head = file_.read(address, fixed, where_ + ": a B-tree node");
    VDIT_CHECK(std::memcmp(head.data(), "TREE", 4) == 0 && head[4] == 0,
               file_.path() << ": " << where_ << ": no group B-tree node at byte offset " << file_.offset(address));
    const int level = head[5];
    const uint64_t entries = little_endian(head, 6, 2);
    const std::vector<uint8_t> body = file_.read(address + fixed, entries * (l_ + a_) + l_, where_ + ": a B-tree node");
    for (uint64_t i = 0; i <= entries; ++i) {
      const size_t at = i * (l_ + a_);
      name_at(little_endian(body, at, l_), address + fixed + at);
      if (i == entries) break;
      const uint64_t child = little_endian(body, at + l_, a_);
      if (level > 0) node(child, depth + 1);
      else symbol_node(child);
    }
  }

 private:
  static constexpr int kMaxDepth = 32;
  static constexpr int kMaxNodes = 1 << 20;

  // "SNOD", version 1, reserved, number of symbols, then entries of: name offset, object header
  // address, cache type (4), reserved (4), scratch pad (16).
  void symbol_node(uint64_t address) {
    VDIT_CHECK(++nodes_ <= kMaxNodes, file_.path() << ": " << where_ << ": the group has more than " << kMaxNodes << " nodes");
    const std::vector<uint8_t> head = file_.read(address, 8, where_ + ": a symbol table node");
    VDIT_CHECK(std::memcmp(head.data(), "SNOD", 4) == 0,
               file_.path() << ": " << where_ << ": no symbol table node at byte offset " << file_.offset(address));
    const uint64_t symbols = little_endian(head, 6, 2), entry = l_ + a_ + 24;
    const std::vector<uint8_t> body = file_.read(address + 8, symbols * entry, where_ + ": a symbol table node");
    for (uint64_t i = 0; i < symbols; ++i) name_at(little_endian(body, i * entry, l_), address + 8 + i * entry);
  }

  void name_at(uint64_t offset, uint64_t recorded_at) {
    VDIT_CHECK(name_in_heap(heap_, offset),
               file_.path() << ": " << where_ << ": the link name at heap offset " << offset << " (recorded at byte offset "
                            << file_.offset(recorded_at) << ") does not end inside the group's local heap of "
                            << heap_.size() << " bytes: a corrupt file");
  }

  const Hdf5RawFile& file_;
  size_t a_, l_;
  const std::vector<uint8_t>& heap_;
  const std::string& where_;
  int64_t nodes_ = 0;
};

}  // namespace

void check_link_name_heap(const Hdf5RawFile& file, const std::vector<HeaderMessage>& header, const std::string& where) {
  for (const HeaderMessage& m : header) {
    if (m.type != kSymbolTableMessage) continue;
    // The addresses of the group's v1 B-tree and of its local heap (the message's size was checked).
    const uint64_t btree = little_endian(m.data, 0, file.address_width());
    const std::vector<uint8_t> heap = read_local_heap(file, little_endian(m.data, file.address_width(), file.address_width()), where);
    NameOffsetWalk(file, heap, where).node(btree, 0);
    return;
  }
}

}  // namespace vdit
