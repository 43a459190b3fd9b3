#pragma once
// Reads a header message's fields in order, each checked to lie inside the message: HDF5 1.10
// decodes most messages without knowing their size, so a field that runs past its message is
// what the guards of data/hdf5_header_messages.h refuse. Errors name the file, the object, the
// message and the byte offset of the field.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/check.h"
#include "data/hdf5_raw_file.h"

namespace vdit {

class MessageFields {
 public:
  // `what` names the message and where it is, e.g. "file.h5: object '/a': its attribute message".
  MessageFields(const std::vector<uint8_t>& bytes, const Hdf5RawFile& file, uint64_t address, std::string what)
      : bytes_(bytes), file_(file), address_(address), end_(bytes.size()), what_(std::move(what)) {}

  // The fields of `length` bytes from here, as a message of their own (an attribute's datatype).
  MessageFields part(uint64_t length, const std::string& name) {
    const size_t begin = take(length, name);
    MessageFields inner(*this);
    inner.pos_ = begin;
    inner.end_ = begin + length;
    inner.what_ = what_ + ", its " + name;
    return inner;
  }

  uint64_t number(size_t width, const std::string& name) { return little_endian(bytes_, take(width, name), width); }
  uint64_t address(const std::string& name) { return number(file_.address_width(), name); }
  uint64_t length(const std::string& name) { return number(file_.length_width(), name); }
  void skip(uint64_t count, const std::string& name) { take(count, name); }
  // A NUL-terminated string HDF5 copies with strdup: the NUL must come within `count` bytes.
  std::string string(uint64_t count, const std::string& name) {
    const size_t begin = take(count, name);
    const void* nul = count == 0 ? nullptr : std::memchr(bytes_.data() + begin, 0, count);  // an empty message has no data()
    if (nul == nullptr) fail(name + " has no terminating NUL within its " + std::to_string(count) + " bytes");
    return {reinterpret_cast<const char*>(bytes_.data() + begin), static_cast<const char*>(nul)};
  }
  // The same for a string whose end is only its NUL; returns its length with the NUL.
  size_t string_to_nul(const std::string& name) {
    const void* nul = pos_ == end_ ? nullptr : std::memchr(bytes_.data() + pos_, 0, end_ - pos_);
    if (nul == nullptr) fail(name + " has no terminating NUL before the end");
    const size_t count = static_cast<size_t>(static_cast<const uint8_t*>(nul) - (bytes_.data() + pos_)) + 1;
    take(count, name);
    return count;
  }

  // Adds to what the errors name (an attribute's name, once read).
  void name(const std::string& more) { what_ += more; }
  size_t remaining() const { return end_ - pos_; }
  const Hdf5RawFile& file() const { return file_; }
  [[noreturn]] void fail(const std::string& why) const {
    VDIT_FAIL(what_ << " (byte offset " << file_.offset(address_ + pos_) << "): " << why);
  }

 private:
  size_t take(uint64_t count, const std::string& name) {
    if (count > end_ - pos_)
      fail(name + " of " + std::to_string(count) + " bytes runs past the end (" + std::to_string(end_ - pos_) +
           " bytes left)");
    const size_t begin = pos_;
    pos_ += count;
    return begin;
  }

  const std::vector<uint8_t>& bytes_;
  const Hdf5RawFile& file_;
  uint64_t address_;
  size_t pos_ = 0, end_;
  std::string what_;
};

}  // namespace vdit
