#include "data/hdf5_raw_file.h"

#include <cstring>

#include "autograd/check.h"

namespace vdit {

uint64_t little_endian(const std::vector<uint8_t>& bytes, size_t at, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) value |= uint64_t{bytes.at(at + i)} << (8 * i);
  return value;
}

Hdf5RawFile::Hdf5RawFile(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  VDIT_CHECK(in_, path << ": cannot open the file to check its structure");
  in_.seekg(0, std::ios::end);
  size_ = static_cast<uint64_t>(in_.tellg());
  // The superblock starts at byte 0 or, after a user block, at 512, 1024, 2048, ...; the file's
  // addresses count from there (HDF5 takes the superblock's offset as the base address).
  const char signature[] = "\x89HDF\r\n\x1a\n";
  for (base_ = 0;; base_ = base_ ? 2 * base_ : 512) {
    VDIT_CHECK(base_ + 8 <= size_, path << ": no HDF5 superblock signature");
    if (std::memcmp(read(0, 8, "the superblock signature").data(), signature, 8) == 0) break;
  }
  const std::vector<uint8_t> head = read(0, 16, "the superblock");
  const int version = head[8];
  VDIT_CHECK(version <= 3, path << ": superblock version " << version << " (byte offset " << base_
                                << "), expected 0 to 3");
  const bool old = version < 2;
  address_width_ = old ? head[13] : head[9];
  length_width_ = old ? head[14] : head[10];
  for (size_t width : {address_width_, length_width_})
    VDIT_CHECK(width == 2 || width == 4 || width == 8,
               path << ": the superblock gives addresses or lengths " << width << " bytes, expected 2, 4 or 8");
  const size_t a = address_width_;
  if (old) {
    // 24 bytes of versions, sizes and B-tree K values (28 in version 1), then the base,
    // free-space, end-of-file and driver addresses, then the root group's symbol table entry:
    // its link name offset, then its object header address.
    const size_t addresses = version == 0 ? 24 : 28;
    const std::vector<uint8_t> tail = read(addresses, 6 * a, "the superblock");
    root_header_ = little_endian(tail, 5 * a, a);
    extension_header_ = ~uint64_t{0} >> (64 - 8 * a);
  } else {
    // The base, superblock extension, end-of-file and root object header addresses.
    const std::vector<uint8_t> tail = read(12, 4 * a, "the superblock");
    extension_header_ = little_endian(tail, a, a);
    root_header_ = little_endian(tail, 3 * a, a);
  }
}

bool Hdf5RawFile::defined(uint64_t address) const {
  return address != (~uint64_t{0} >> (64 - 8 * address_width_));
}

std::vector<uint8_t> Hdf5RawFile::read(uint64_t address, uint64_t count, const std::string& where) const {
  VDIT_CHECK(address <= size_ - base_ && count <= size_ - base_ - address,
             path_ << ": " << where << ": " << count << " bytes at byte offset " << offset(address)
                   << " lie beyond the end of the file (" << size_ << " bytes)");
  std::vector<uint8_t> bytes(count);
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(base_ + address));
  in_.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(count));
  VDIT_CHECK(in_, path_ << ": " << where << ": cannot read " << count << " bytes at byte offset " << offset(address));
  return bytes;
}

}  // namespace vdit
