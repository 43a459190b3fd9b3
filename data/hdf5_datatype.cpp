#include "data/hdf5_datatype.h"

namespace vdit {

namespace {

constexpr int kMaxNesting = 16;  // members of members; real types nest a few levels
constexpr int kMaxArrayRank = 32;  // H5S_MAX_RANK

// A member or enum name: NUL-terminated, padded to a multiple of 8 bytes before version 3.
void member_name(MessageFields& f, int version, const std::string& name) {
  const size_t length = f.string_to_nul(name);
  if (version < 3) f.skip((length + 7) / 8 * 8 - length, name + "'s padding");
}

uint64_t checked_product(MessageFields& f, uint64_t a, uint64_t b, const std::string& what) {
  uint64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) f.fail(what + " overflows");
  return product;
}

Hdf5Datatype read(MessageFields& f, int depth);

// `stored` extents of 4 bytes each; the product of the first `rank`.
uint64_t extents(MessageFields& f, int stored, int rank, const std::string& name) {
  uint64_t count = 1;
  for (int i = 0; i < stored; ++i) {
    const uint64_t extent = f.number(4, name);
    if (i < rank) count = checked_product(f, count, extent, "the element count of " + name);
  }
  return count;
}

// Compound members: name, byte offset, (version 1: an array shape), type; each inside the compound.
void compound_members(MessageFields& f, int version, uint32_t bits, uint64_t size, int depth) {
  // Version 3 writes a member's offset in as few bytes as the compound's size needs.
  size_t offset_width = 1;
  while (offset_width < 8 && (size >> (8 * offset_width)) != 0) ++offset_width;
  for (uint32_t m = 0; m < (bits & 0xffff); ++m) {
    const std::string name = "compound member " + std::to_string(m);
    member_name(f, version, name + "'s name");
    const uint64_t offset = f.number(version < 3 ? 4 : offset_width, name + "'s offset");
    uint64_t count = 1;
    if (version == 1) {
      const int rank = static_cast<int>(f.number(1, name + "'s rank"));
      if (rank > 4) f.fail(name + " has rank " + std::to_string(rank) + ", expected at most 4");
      f.skip(3 + 4 + 4, name + "'s reserved bytes");
      count = extents(f, 4, rank, name + "'s extents");
    }
    const uint64_t member_size = checked_product(f, count, read(f, depth + 1).size, name + "'s size");
    if (offset > size || member_size > size - offset)
      f.fail(name + " of " + std::to_string(member_size) + " bytes at offset " + std::to_string(offset) +
             " lies outside its compound of " + std::to_string(size) + " bytes");
  }
}

Hdf5Datatype read(MessageFields& f, int depth) {
  if (depth > kMaxNesting) f.fail("datatypes nested more than " + std::to_string(kMaxNesting) + " deep");
  const uint64_t head = f.number(1, "datatype class and version");
  const uint32_t bits = static_cast<uint32_t>(f.number(3, "datatype bit field"));
  const int version = static_cast<int>(head >> 4);
  Hdf5Datatype type{static_cast<int>(head & 15), f.number(4, "datatype size")};
  if (version < 1 || version > 3) f.fail("datatype version " + std::to_string(version) + ", expected 1 to 3");
  if (type.size == 0) f.fail("a datatype of 0 bytes");
  switch (type.type_class) {
    case 0: f.skip(4, "integer properties"); break;
    case 1: f.skip(12, "floating-point properties"); break;
    case 2: f.skip(2, "time properties"); break;
    case 3: case 7: break;  // string, reference: no properties
    case 4: f.skip(4, "bit field properties"); break;
    case 5: f.skip(bits & 0xff, "opaque tag"); break;
    case 6: compound_members(f, version, bits, type.size, depth); break;
    case 8: {
      const uint64_t value_size = read(f, depth + 1).size;
      for (uint32_t m = 0; m < (bits & 0xffff); ++m) member_name(f, version, "enum name " + std::to_string(m));
      f.skip(checked_product(f, bits & 0xffff, value_size, "enum values' size"), "enum values");
      break;
    }
    case 9: {
      read(f, depth + 1);
      // In the file an element is a global heap reference: length (4), collection address, index (4).
      const uint64_t reference = 4 + f.file().address_width() + 4;
      if (type.size != reference)
        f.fail("a variable-length datatype of " + std::to_string(type.size) + " bytes, expected " + std::to_string(reference));
      break;
    }
    case 10: {
      if (version < 2) f.fail("an array datatype of version 1");
      const int rank = static_cast<int>(f.number(1, "array rank"));
      if (rank < 1 || rank > kMaxArrayRank)
        f.fail("an array of rank " + std::to_string(rank) + ", expected 1 to " + std::to_string(kMaxArrayRank));
      if (version == 2) f.skip(3, "array reserved bytes");
      const uint64_t count = extents(f, rank, rank, "array extents");
      if (version == 2) f.skip(4 * static_cast<uint64_t>(rank), "array permutation");
      const uint64_t bytes = checked_product(f, count, read(f, depth + 1).size, "array size");
      if (bytes != type.size)
        f.fail("an array of " + std::to_string(bytes) + " bytes declared as " + std::to_string(type.size));
      break;
    }
    default: f.fail("datatype class " + std::to_string(type.type_class) + ", expected 0 to 10");
  }
  return type;
}

}  // namespace

Hdf5Datatype read_datatype(MessageFields& fields) { return read(fields, 0); }

}  // namespace vdit
