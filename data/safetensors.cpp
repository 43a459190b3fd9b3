#include "data/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "autograd/check.h"
#include "data/atomic_file.h"

namespace vdit {

// The file format is little-endian and tensors are borrowed straight from the mapping.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace fs = std::filesystem;
using OrderedJson = nlohmann::ordered_json;  // keeps the header's tensor order

struct SafetensorsFile::Mapping {
  uint8_t* bytes = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (bytes) ::munmap(bytes, size);
  }
};

namespace {

constexpr uint64_t kLengthBytes = 8;  // the header length field

uint64_t read_le64(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | p[i];
  return value;
}

// Bytes per element of a dtype we read; a real safetensors dtype we do not read and a name
// that is no safetensors dtype at all are told apart, so the message says which it is.
size_t itemsize(const std::string& dtype, const std::string& where) {
  if (dtype == "F32") return 4;
  if (dtype == "BF16" || dtype == "F16") return 2;
  static const std::set<std::string> unsupported = {"F64", "I64", "U64", "I32", "U32", "I16",
                                                    "U16", "I8",  "U8",  "BOOL", "F8_E4M3", "F8_E5M2"};
  VDIT_CHECK(!unsupported.count(dtype), where << "unsupported dtype " << dtype << " (vditkit reads F32, BF16, F16)");
  VDIT_FAIL(where << "unknown dtype '" << dtype << "' (vditkit reads F32, BF16, F16)");
}

// nlohmann counts bytes from 1 into the text it was given (one past its end for a premature
// end); `base` is where that text starts in the file, so the offset printed is a file offset.
OrderedJson parse_json(const char* begin, const char* end, const std::string& path, const char* what,
                       uint64_t base) {
  try {
    return OrderedJson::parse(begin, end);
  } catch (const nlohmann::json::parse_error& e) {
    VDIT_FAIL(path << ": " << what << " is not valid JSON at byte offset " << base + e.byte - 1
                   << " of the file: " << e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond double, e.g. 1e400
    VDIT_FAIL(path << ": " << what << " is not valid JSON: " << e.what());
  }
}

// Closes a POSIX file descriptor on every path out of a scope.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

std::shared_ptr<SafetensorsFile::Mapping> map_file(const std::string& path) {
  const FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  VDIT_CHECK(file.fd >= 0, "cannot open " << path << ": " << std::strerror(errno));
  struct stat st {};
  VDIT_CHECK(::fstat(file.fd, &st) == 0 && S_ISREG(st.st_mode), path << ": not a regular file");
  const size_t size = static_cast<size_t>(st.st_size);
  VDIT_CHECK(size >= kLengthBytes, path << ": truncated: " << size << " bytes, need at least " << kLengthBytes);
  // Private and writable: pages are shared with the page cache until someone writes to a
  // borrowed tensor (e.g. an optimizer updating a weight in place); that page is then copied,
  // and the file itself is never modified.
  void* bytes = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd, 0);
  VDIT_CHECK(bytes != MAP_FAILED, "cannot map " << path << ": " << std::strerror(errno));
  auto mapping = std::make_shared<SafetensorsFile::Mapping>();
  mapping->bytes = static_cast<uint8_t*>(bytes);
  mapping->size = size;
  return mapping;
}

// One header entry, checked against the size of the data section it must lie in.
SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const OrderedJson& value,
                             uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "': ";
  VDIT_CHECK(value.is_object(), where << "header entry is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    VDIT_CHECK(value.contains(field), where << "header entry has no '" << field << "'");
  const OrderedJson& dtype = value["dtype"];
  const OrderedJson& shape = value["shape"];
  const OrderedJson& offsets = value["data_offsets"];
  VDIT_CHECK(dtype.is_string(), where << "dtype is not a string: " << dtype.dump());
  VDIT_CHECK(shape.is_array() && std::all_of(shape.begin(), shape.end(), [](auto& d) { return d.is_number_integer(); }),
             where << "shape is not an array of integers: " << shape.dump());
  VDIT_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             where << "data_offsets is not two non-negative integers: " << offsets.dump());

  SafetensorsEntry entry;
  entry.name = name;
  entry.dtype = dtype.get<std::string>();
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  uint64_t bytes = itemsize(entry.dtype, where);
  for (const OrderedJson& d : shape) {
    const int64_t extent = d.get<int64_t>();
    VDIT_CHECK(extent >= 0, where << "negative dimension in shape " << shape.dump());
    entry.shape.push_back(extent);
    VDIT_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(extent), &bytes),
               where << "shape " << shape.dump() << " overflows 64-bit byte counts");
  }
  VDIT_CHECK(entry.begin <= entry.end && entry.end <= data_size,
             where << "data_offsets [" << entry.begin << ", " << entry.end << "] lie outside the data section of "
                   << data_size << " bytes");
  VDIT_CHECK(entry.end - entry.begin == bytes, where << "data_offsets span " << entry.end - entry.begin
                                                     << " bytes but " << entry.dtype << " " << to_string(entry.shape)
                                                     << " needs " << bytes);
  return entry;
}

// Tensors may leave gaps (bytes no tensor claims) but never share a byte.
void check_disjoint(const std::string& path, const std::vector<SafetensorsEntry>& entries) {
  std::vector<const SafetensorsEntry*> sorted;
  for (const SafetensorsEntry& e : entries)
    if (e.end > e.begin) sorted.push_back(&e);  // an empty tensor claims no byte
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  const SafetensorsEntry* reaching = nullptr;  // the tensor reaching furthest so far
  for (const SafetensorsEntry* e : sorted) {
    VDIT_CHECK(!reaching || e->begin >= reaching->end,
               path << ": tensors '" << reaching->name << "' [" << reaching->begin << ", " << reaching->end
                    << "] and '" << e->name << "' [" << e->begin << ", " << e->end << "] overlap");
    if (!reaching || e->end > reaching->end) reaching = e;
  }
}

float f16_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t wide_exponent = exponent == 0x1fu ? 0xffu : exponent + (127 - 15);  // inf/NaN stay so
  return std::bit_cast<float>(sign | wide_exponent << 23 | mantissa << 13);
}

Tensor widen_f16(const Shape& shape, const uint8_t* bytes) {
  Tensor out = Tensor::empty(shape);
  float* dst = out.data();
  const int64_t n = out.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(static_cast<uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8));
  return out;
}


// A directory names the checkpoint inside it: its index if it has one, else its only file.
std::string resolve_checkpoint_path(const std::string& path) {
  if (!fs::is_directory(path)) return path;
  std::vector<std::string> indexes, files;
  for (const fs::directory_entry& item : fs::directory_iterator(path)) {
    const std::string name = item.path().filename().string();
    if (name.ends_with(".safetensors.index.json")) indexes.push_back(name);
    if (name.ends_with(".safetensors")) files.push_back(name);
  }
  if (indexes.size() == 1) return (fs::path(path) / indexes[0]).string();
  if (indexes.empty() && files.size() == 1) return (fs::path(path) / files[0]).string();
  std::vector<std::string> found = indexes.empty() ? files : indexes;
  std::sort(found.begin(), found.end());
  std::ostringstream listing;
  for (size_t i = 0; i < found.size(); ++i) listing << (i ? ", " : "") << found[i];
  VDIT_FAIL(path << ": expected one *.safetensors.index.json or a single *.safetensors, found "
                 << (found.empty() ? std::string("neither") : listing.str()));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VDIT_CHECK(in, "cannot open " << path << ": " << std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes n converted values in chunks, so converting a large tensor needs no full-size copy.
template <typename Out, typename Convert>
void write_converted(AtomicFile& out, int64_t n, Convert convert) {
  constexpr int64_t kChunk = 1 << 16;
  std::vector<Out> chunk;
  for (int64_t start = 0; start < n; start += kChunk) {
    chunk.resize(static_cast<size_t>(std::min(kChunk, n - start)));
    for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = convert(start + static_cast<int64_t>(j));
    out.write(chunk.data(), chunk.size() * sizeof(Out));
  }
}

void write_values(AtomicFile& out, const Tensor& t, SafetensorsDType dtype) {
  const bool want_f32 = dtype == SafetensorsDType::F32;
  if (want_f32 == (t.dtype() == DType::F32)) {
    out.write(t.impl()->data, static_cast<size_t>(t.numel()) * (want_f32 ? 4 : 2));
  } else if (want_f32) {
    write_converted<float>(out, t.numel(), [p = t.bf16_data()](int64_t i) { return bf16_to_float(p[i]); });
  } else {
    write_converted<uint16_t>(out, t.numel(), [p = t.data()](int64_t i) { return float_to_bf16(p[i]); });
  }
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = map_file(path);
  const uint8_t* bytes = file->mapping_->bytes;
  const uint64_t size = file->mapping_->size;

  const uint64_t header_size = read_le64(bytes);
  VDIT_CHECK(header_size <= size - kLengthBytes, path << ": header length " << header_size
                                                      << " runs past the end of the file (" << size << " bytes)");
  const char* header_text = reinterpret_cast<const char*>(bytes + kLengthBytes);
  const OrderedJson header = parse_json(header_text, header_text + header_size, path, "header", kLengthBytes);
  VDIT_CHECK(header.is_object(), path << ": header is not a JSON object");
  const uint64_t data_start = kLengthBytes + header_size;
  file->data_ = file->mapping_->bytes + data_start;

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      VDIT_CHECK(value.is_object(), path << ": __metadata__ is not an object");
      for (const auto& [key, text] : value.items()) {
        VDIT_CHECK(text.is_string(), path << ": __metadata__ '" << key << "' is not a string");
        file->metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    file->index_[name] = file->entries_.size();
    file->entries_.push_back(parse_entry(path, name, value, size - data_start));
  }
  check_disjoint(path, file->entries_);
  return file;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* entry = find(name);
  VDIT_CHECK(entry, path_ << ": no tensor '" << name << "'");
  uint8_t* bytes = data_ + entry->begin;
  if (entry->dtype == "F16") return widen_f16(entry->shape, bytes);
  const DType dtype = entry->dtype == "F32" ? DType::F32 : DType::BF16;
  const size_t size = entry->end - entry->begin;
  if (reinterpret_cast<uintptr_t>(bytes) % itemsize(entry->dtype, path_) == 0)
    return Tensor::borrow(entry->shape, dtype, bytes, mapping_);
  // A writer that does not pad its header can leave a tensor at an address its elements may
  // not be read from (vectorised loops assume natural alignment): such a tensor is copied, to
  // storage tensor_memory() does not count (it is not a Tensor::empty allocation).
  std::shared_ptr<uint32_t[]> copy(new uint32_t[(size + 3) / 4]);
  std::memcpy(copy.get(), bytes, size);
  return Tensor::borrow(entry->shape, dtype, copy.get(), copy);
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  SafetensorsCheckpoint checkpoint;
  checkpoint.path_ = resolve_checkpoint_path(path);
  const std::string& resolved = checkpoint.path_;
  if (!resolved.ends_with(".json")) {
    auto file = SafetensorsFile::open(resolved);
    for (const SafetensorsEntry& e : file->entries()) checkpoint.files_[e.name] = file;
    return checkpoint;
  }

  const std::string text = read_text(resolved);
  const OrderedJson index = parse_json(text.data(), text.data() + text.size(), resolved, "index", 0);
  VDIT_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
             resolved << ": index has no 'weight_map' object");
  const fs::path folder = fs::path(resolved).parent_path();
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // by name in the index
  for (const auto& [key, shard_json] : index["weight_map"].items()) {
    VDIT_CHECK(shard_json.is_string(), resolved << ": key '" << key << "' maps to " << shard_json.dump()
                                                << ", not a file name");
    const std::string shard = shard_json.get<std::string>();
    auto& file = shards[shard];
    if (!file) {
      const fs::path shard_path = folder / shard;
      VDIT_CHECK(fs::is_regular_file(shard_path), resolved << ": key '" << key << "' is in shard '" << shard
                                                           << "', which is missing (" << shard_path.string() << ")");
      file = SafetensorsFile::open(shard_path.string());
    }
    VDIT_CHECK(file->find(key), resolved << ": key '" << key << "' is not in its shard " << file->path());
    checkpoint.files_[key] = file;
  }
  return checkpoint;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : files_) names.push_back(name);
  return names;
}

const SafetensorsFile& SafetensorsCheckpoint::file(const std::string& name) const {
  auto it = files_.find(name);
  VDIT_CHECK(it != files_.end(), path_ << ": no tensor '" << name << "'");
  return *it->second;
}

const SafetensorsEntry& SafetensorsCheckpoint::entry(const std::string& name) const {
  return *file(name).find(name);
}

Tensor SafetensorsCheckpoint::tensor(const std::string& name) const { return file(name).tensor(name); }

std::string SafetensorsCheckpoint::file_of(const std::string& name) const { return file(name).path(); }

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       SafetensorsDType dtype, const std::map<std::string, std::string>& metadata) {
  const uint64_t bytes_per_value = dtype == SafetensorsDType::F32 ? 4 : 2;
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    VDIT_CHECK(t.defined(), path << ": tensor '" << name << "' is undefined");
    VDIT_CHECK(name != "__metadata__" && !header.contains(name),
               path << ": tensor name '" << name << "' is reserved or given twice");
    const uint64_t size = static_cast<uint64_t>(t.numel()) * bytes_per_value;
    OrderedJson& entry = header[name];
    entry["dtype"] = dtype == SafetensorsDType::F32 ? "F32" : "BF16";
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + size};
    offset += size;
  }
  std::string text = header.dump();
  text.append((kLengthBytes - text.size() % kLengthBytes) % kLengthBytes, ' ');

  AtomicFile out(path);
  const uint64_t header_size = text.size();
  out.write(&header_size, sizeof header_size);
  out.write(text.data(), text.size());
  for (const auto& [name, t] : tensors) write_values(out, t, dtype);
  out.commit();
}

}  // namespace vdit
