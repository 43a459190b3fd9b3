#include "data/hdf5_link_heap.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <vector>

#include "autograd/check.h"

namespace vdit {

namespace {

// Little-endian reads of the file's bytes, every one bounds-checked against the file's size.
class FileBytes {
 public:
  FileBytes(const std::string& path, const std::string& where) : in_(path, std::ios::binary), where_(where) {
    VDIT_CHECK(in_, where_ << ": cannot reopen the file to check its link names");
    in_.seekg(0, std::ios::end);
    size_ = static_cast<uint64_t>(in_.tellg());
  }

  std::vector<uint8_t> read(uint64_t offset, uint64_t count) {
    VDIT_CHECK(offset <= size_ && count <= size_ - offset,
               where_ << ": " << count << " bytes at byte offset " << offset << " lie beyond the end of the file ("
                      << size_ << " bytes)");
    std::vector<uint8_t> bytes(count);
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(count));
    VDIT_CHECK(in_, where_ << ": cannot read " << count << " bytes at byte offset " << offset);
    return bytes;
  }

 private:
  std::ifstream in_;
  std::string where_;
  uint64_t size_ = 0;
};

uint64_t little_endian(const std::vector<uint8_t>& bytes, size_t at, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) value |= uint64_t{bytes.at(at + i)} << (8 * i);
  return value;
}

struct Widths {
  size_t address = 8;  // "size of offsets" in the superblock
  size_t length = 8;   // "size of lengths"
};

// A run of header messages: [begin, end) in the file.
struct MessageChunk {
  uint64_t begin, end;
};

constexpr uint16_t kContinuationMessage = 0x10;
constexpr uint16_t kSymbolTableMessage = 0x11;
// A header continues in at most this many chunks; more means a loop in a corrupt file.
constexpr int kMaxChunks = 64;

struct SymbolTable {
  uint64_t btree, heap;  // addresses of the v1 B-tree of the group's nodes and of its local heap
};

// The symbol table message of the object header at `header`. HDF5 writes old-style groups with
// version 1 headers only (a version 2 header comes with the 1.8 format, whose groups hold link
// messages instead).
SymbolTable symbol_table(FileBytes& file, uint64_t base, uint64_t header, const Widths& w, const std::string& where) {
  // Version (1), reserved, message count (2), reference count (4), header size (4), padding to 16;
  // then messages of type (2), size (2), flags (1), reserved (3) and data, continued in chunks.
  const std::vector<uint8_t> prefix = file.read(base + header, 16);
  VDIT_CHECK(prefix[0] == 1, where << ": an old-style group whose object header at byte offset " << base + header
                                   << " has version " << int(prefix[0]) << ", not 1");
  std::vector<MessageChunk> chunks{{header + 16, header + 16 + little_endian(prefix, 8, 4)}};
  for (size_t c = 0; c < chunks.size(); ++c) {
    VDIT_CHECK(c < kMaxChunks, where << ": object header at byte offset " << base + header
                                     << " continues in more than " << kMaxChunks << " chunks");
    const MessageChunk chunk = chunks[c];
    VDIT_CHECK(chunk.begin <= chunk.end, where << ": object header chunk at byte offset " << base + chunk.begin
                                               << " has a negative size");
    const std::vector<uint8_t> bytes = file.read(base + chunk.begin, chunk.end - chunk.begin);
    for (size_t pos = 0; pos + 8 <= bytes.size();) {
      const uint64_t type = little_endian(bytes, pos, 2), size = little_endian(bytes, pos + 2, 2);
      const size_t data = pos + 8;
      VDIT_CHECK(data + size <= bytes.size(), where << ": header message at byte offset " << base + chunk.begin + pos
                                                    << " runs past its chunk");
      if (type == kSymbolTableMessage && size >= 2 * w.address)
        return {little_endian(bytes, data, w.address), little_endian(bytes, data + w.address, w.address)};
      if (type == kContinuationMessage && size >= w.address + w.length) {
        const uint64_t at = little_endian(bytes, data, w.address);
        chunks.push_back({at, at + little_endian(bytes, data + w.address, w.length)});
      }
      pos = data + size;
    }
  }
  VDIT_FAIL(where << ": an old-style group whose object header (byte offset " << base + header
                  << ") has no symbol table message");
}

// Every name offset the group's B-tree (its keys) and symbol nodes (their entries) hold must start
// a NUL-terminated string inside `heap`: those are the offsets HDF5 copies or compares from.
class NameOffsetWalk {
 public:
  NameOffsetWalk(FileBytes& file, uint64_t base, const Widths& w, const std::vector<uint8_t>& heap, const std::string& where)
      : file_(file), base_(base), w_(w), heap_(heap), where_(where) {}

  void node(uint64_t address, int depth) {
    VDIT_CHECK(depth <= kMaxDepth && ++nodes_ <= kMaxNodes,
               where_ << ": the group's B-tree is deeper than " << kMaxDepth << " levels or has more than " << kMaxNodes
                      << " nodes (byte offset " << base_ + address << ")");
    // "TREE", node type (0: group), level, entries used, left and right siblings, then
    // key 0, child 0, key 1, ..., child n-1, key n.
    const size_t fixed = 8 + 2 * w_.address;
    const std::vector<uint8_t> head = file_.read(base_ + address, fixed);
    VDIT_CHECK(std::memcmp(head.data(), "TREE", 4) == 0 && head[4] == 0,
               where_ << ": no group B-tree node at byte offset " << base_ + address);
    const int level = head[5];
    const uint64_t entries = little_endian(head, 6, 2);
    const std::vector<uint8_t> body =
        file_.read(base_ + address + fixed, entries * (w_.length + w_.address) + w_.length);
    for (uint64_t i = 0; i <= entries; ++i) {
      const size_t at = i * (w_.length + w_.address);
      name_at(little_endian(body, at, w_.length), base_ + address + fixed + at);
      if (i == entries) break;
      const uint64_t child = little_endian(body, at + w_.length, w_.address);
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
    VDIT_CHECK(++nodes_ <= kMaxNodes, where_ << ": the group has more than " << kMaxNodes << " nodes");
    const std::vector<uint8_t> head = file_.read(base_ + address, 8);
    VDIT_CHECK(std::memcmp(head.data(), "SNOD", 4) == 0, where_ << ": no symbol table node at byte offset " << base_ + address);
    const uint64_t symbols = little_endian(head, 6, 2), entry = w_.length + w_.address + 24;
    const std::vector<uint8_t> body = file_.read(base_ + address + 8, symbols * entry);
    for (uint64_t i = 0; i < symbols; ++i) name_at(little_endian(body, i * entry, w_.length), base_ + address + 8 + i * entry);
  }

  void name_at(uint64_t offset, uint64_t recorded_at) {
    VDIT_CHECK(offset < heap_.size() && std::memchr(heap_.data() + offset, 0, heap_.size() - offset) != nullptr,
               where_ << ": the link name at heap offset " << offset << " (recorded at byte offset " << recorded_at
                      << ") does not end inside the group's local heap of " << heap_.size() << " bytes: a corrupt file");
  }

  FileBytes& file_;
  uint64_t base_;
  Widths w_;
  const std::vector<uint8_t>& heap_;
  const std::string& where_;
  int64_t nodes_ = 0;
};

}  // namespace

void check_link_name_heap(hid_t group, const std::string& file_path, const std::string& group_name) {
  const std::string where = file_path + ": group '" + group_name + "'";
  H5G_info_t info;
  VDIT_CHECK(H5Gget_info(group, &info) >= 0, where << ": unreadable group");
  if (info.storage_type != H5G_STORAGE_TYPE_SYMBOL_TABLE) return;

  H5O_info_t object;
  VDIT_CHECK(H5Oget_info2(group, &object, H5O_INFO_BASIC) >= 0, where << ": unreadable object header");
  const hid_t file_id = H5Iget_file_id(group);
  const hid_t plist = H5Fget_create_plist(file_id);
  Widths widths;
  hsize_t userblock = 0;
  const bool sizes_read = H5Pget_sizes(plist, &widths.address, &widths.length) >= 0 && H5Pget_userblock(plist, &userblock) >= 0;
  H5Pclose(plist);
  H5Fclose(file_id);
  VDIT_CHECK(sizes_read && widths.address >= 1 && widths.address <= 8 && widths.length >= 1 && widths.length <= 8,
             where << ": unreadable address and length sizes");

  FileBytes file(file_path, where);
  const SymbolTable table = symbol_table(file, userblock, object.addr, widths, where);
  // "HEAP", version 0, 3 reserved bytes, data segment size, free list offset, data segment address.
  const std::vector<uint8_t> header = file.read(userblock + table.heap, 8 + 2 * widths.length + widths.address);
  VDIT_CHECK(std::memcmp(header.data(), "HEAP", 4) == 0 && header[4] == 0,
             where << ": no local heap at byte offset " << userblock + table.heap);
  const uint64_t size = little_endian(header, 8, widths.length);
  const uint64_t data = little_endian(header, 8 + 2 * widths.length, widths.address);
  const std::vector<uint8_t> heap = file.read(userblock + data, size);
  NameOffsetWalk(file, userblock, widths, heap, where).node(table.btree, 0);
}

}  // namespace vdit
