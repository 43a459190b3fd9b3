#include "data/hdf5_object_header.h"

#include <cstring>
#include <set>
#include <sstream>

#include "autograd/check.h"

namespace vdit {

namespace {

// A run of messages: [begin, end) of its bytes.
struct Chunk {
  uint64_t address;
  std::vector<uint8_t> bytes;
  size_t begin, end;
};

// A header continues in at most this many chunks: each attribute added to a full header may
// add one, and a vditkit file has at most a few; more means a corrupt file.
constexpr size_t kMaxChunks = 4096;

std::string at_offset(const Hdf5RawFile& file, uint64_t address) {
  return "byte offset " + std::to_string(file.offset(address));
}

class HeaderReader {
 public:
  HeaderReader(const Hdf5RawFile& file, uint64_t address, const std::string& where)
      : file_(file), address_(address), where_(where + " (object header at " + at_offset(file, address) + ")") {}

  std::vector<HeaderMessage> read() {
    const std::vector<uint8_t> signature = file_.read(address_, 4, where_);
    version2_ = std::memcmp(signature.data(), "OHDR", 4) == 0;
    std::vector<Chunk> chunks{version2_ ? first_chunk_v2(address_) : first_chunk_v1(address_)};
    std::vector<HeaderMessage> messages;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const Chunk chunk = std::move(chunks[c]);
      for (HeaderMessage& m : messages_of(chunk)) {
        if (m.type == kContinuationMessage) chunks.push_back(continuation(m));
        messages.push_back(std::move(m));
      }
    }
    return messages;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { VDIT_FAIL(file_.path() << ": " << where_ << ": " << what); }

  // Version (1), reserved, message count (2), reference count (4), chunk size (4), padding to 16.
  Chunk first_chunk_v1(uint64_t address) {
    const std::vector<uint8_t> prefix = file_.read(address, 16, where_);
    if (prefix[0] != 1) fail("version " + std::to_string(prefix[0]) + ", expected 1 or an \"OHDR\" signature");
    return chunk_at(address + 16, little_endian(prefix, 8, 4), 0, 0);
  }

  // "OHDR", version 2, flags; times (16) and attribute storage limits (4) where the flags say;
  // the first chunk's size in 1 to 8 bytes; its messages; a checksum (4).
  Chunk first_chunk_v2(uint64_t address) {
    const std::vector<uint8_t> head = file_.read(address, 6, where_);
    if (head[4] != 2) fail("\"OHDR\" version " + std::to_string(head[4]) + ", expected 2");
    flags_ = head[5];
    const size_t size_at = 6 + (flags_ & 0x20 ? 16 : 0) + (flags_ & 0x10 ? 4 : 0);
    const size_t size_width = size_t{1} << (flags_ & 3);
    const uint64_t size = little_endian(file_.read(address + size_at, size_width, where_), 0, size_width);
    return chunk_at(address, size_at + size_width + size + 4, size_at + size_width, 4);
  }

  // The chunk of `length` bytes at `address`, its messages between `prefix` and `suffix` bytes.
  Chunk chunk_at(uint64_t address, uint64_t length, size_t prefix, size_t suffix) {
    if (!visited_.insert(address).second) fail("its chunks form a loop (again at " + at_offset(file_, address) + ")");
    if (visited_.size() > kMaxChunks) fail("more than " + std::to_string(kMaxChunks) + " chunks");
    if (length < prefix + suffix)
      fail("a chunk at " + at_offset(file_, address) + " of " + std::to_string(length) + " bytes, too short");
    Chunk chunk{address, file_.read(address, length, where_ + ": a chunk"), prefix, 0};
    chunk.end = chunk.bytes.size() - suffix;
    return chunk;
  }

  // A continuation message: the next chunk's address and length.
  Chunk continuation(const HeaderMessage& m) {
    const size_t a = file_.address_width(), l = file_.length_width();
    if (m.data.size() < a + l) fail("a continuation message at " + at_offset(file_, m.address) + " is too short");
    const uint64_t address = little_endian(m.data, 0, a), length = little_endian(m.data, a, l);
    if (!version2_) return chunk_at(address, length, 0, 0);
    Chunk chunk = chunk_at(address, length, 4, 4);
    if (std::memcmp(chunk.bytes.data(), "OCHK", 4) != 0)
      fail("no \"OCHK\" signature at the continuation chunk at " + at_offset(file_, address));
    return chunk;
  }

  // Version 1 messages: type (2), size (2), flags (1), reserved (3), data. Version 2: type (1),
  // size (2), flags (1), a creation index (2) where the header's flags say, data; a gap shorter
  // than a message header may end the chunk.
  std::vector<HeaderMessage> messages_of(const Chunk& chunk) {
    const size_t header = version2_ ? 4 + (flags_ & 0x04 ? 2 : 0) : 8;
    std::vector<HeaderMessage> messages;
    for (size_t pos = chunk.begin; pos + header <= chunk.end;) {
      const uint16_t type = static_cast<uint16_t>(version2_ ? chunk.bytes[pos] : little_endian(chunk.bytes, pos, 2));
      const size_t size = little_endian(chunk.bytes, pos + (version2_ ? 1 : 2), 2);
      const uint8_t flags = chunk.bytes[pos + (version2_ ? 3 : 4)];
      const size_t data = pos + header;
      if (size > chunk.end - data) {
        std::ostringstream what;
        what << "the message of type " << type << " at " << at_offset(file_, chunk.address + pos) << " claims "
             << size << " bytes, past the end of its chunk (" << chunk.end - data << " bytes left)";
        fail(what.str());
      }
      messages.push_back({type, flags, chunk.address + data,
                          std::vector<uint8_t>(chunk.bytes.begin() + static_cast<std::ptrdiff_t>(data),
                                               chunk.bytes.begin() + static_cast<std::ptrdiff_t>(data + size))});
      pos = data + size;
    }
    return messages;
  }

  const Hdf5RawFile& file_;
  uint64_t address_;
  std::string where_;
  bool version2_ = false;
  uint8_t flags_ = 0;
  std::set<uint64_t> visited_;
};

}  // namespace

std::vector<HeaderMessage> read_object_header(const Hdf5RawFile& file, uint64_t address, const std::string& where) {
  return HeaderReader(file, address, where).read();
}

}  // namespace vdit
