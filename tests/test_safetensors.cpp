// safetensors reader and writer: round trips, dtypes, sharded checkpoints, zero copy, one test
// per malformed input, and a cross-check against an independent pure-python parser.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "autograd/check.h"
#include "autograd/random.h"
#include "data/safetensors.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testing::ScratchDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le64(uint64_t n) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(n >> (8 * i));
  return bytes;
}

// A hand-made file: length field, `header` verbatim (no padding), then `data`.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  write_bytes(path, le64(header.size()) + header + data);
}

using testing::error_of;

std::string open_error(const std::string& path) {
  return error_of([&] { SafetensorsFile::open(path); });
}

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(rng.uniform() * 8.0 - 4.0);
  return t;
}

std::vector<uint32_t> f32_bits(const Tensor& t) {
  std::vector<uint32_t> bits(static_cast<size_t>(t.numel()));
  std::memcpy(bits.data(), t.data(), bits.size() * sizeof(uint32_t));
  return bits;
}

std::vector<uint16_t> bf16_bits(const Tensor& t) { return {t.bf16_data(), t.bf16_data() + t.numel()}; }

// A header whose only entry is `name`: `entry` (JSON text).
std::string one_entry_header(const std::string& name, const std::string& entry) {
  return "{\"" + name + "\":" + entry + "}";
}

TEST(SafetensorsRoundTrip, F32IsBitExactWithShapesOrderAndMetadata) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  const Tensor a = random_tensor({3, 5}, 1);
  const Tensor b = Tensor::from_vector({2, 1, 2}, {0.0f, -0.0f, INFINITY, 1e-40f});
  const Tensor empty = Tensor::empty({0, 4});
  write_safetensors(path, {{"z.last", a}, {"a.first", b}, {"empty", empty}}, SafetensorsDType::F32,
                    {{"format", "pt"}});

  auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file->entries().size(), 3u);
  EXPECT_EQ(file->entries()[0].name, "z.last");  // header order, not sorted
  EXPECT_EQ(file->entries()[1].name, "a.first");
  EXPECT_EQ(file->entries()[1].dtype, "F32");
  EXPECT_EQ(file->entries()[1].shape, (Shape{2, 1, 2}));
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f32_bits(file->tensor("z.last")), f32_bits(a));
  EXPECT_EQ(f32_bits(file->tensor("a.first")), f32_bits(b));
  EXPECT_EQ(file->tensor("empty").shape(), (Shape{0, 4}));
  EXPECT_FALSE(fs::exists(path + ".partial"));
}

TEST(SafetensorsRoundTrip, HeaderIsPaddedWithSpacesToAMultipleOfEight) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  for (const std::string name : {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"}) {
    write_safetensors(path, {{name, Tensor::zeros({3})}}, SafetensorsDType::F32);
    const std::string bytes = read_bytes(path);
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    EXPECT_EQ(header_size % 8, 0u) << name;
    const std::string header = bytes.substr(8, header_size);
    EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}')) << name;
    EXPECT_EQ(bytes.size(), 8 + header_size + 3 * sizeof(float)) << name;
  }
}

TEST(SafetensorsRoundTrip, Bf16RoundsToNearestEvenBitExactly) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  // bf16 keeps 7 mantissa bits, so near 1 its step is 2^-7: ties go to the even mantissa.
  const Tensor ties = Tensor::from_vector(
      {4}, {1.0f + 0x1p-8f, 1.0f + 0x1p-7f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -(1.0f + 0x1p-8f)});
  const Tensor random = random_tensor({7, 9}, 2);
  write_safetensors(path, {{"ties", ties}, {"random", random}}, SafetensorsDType::BF16);

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->find("ties")->dtype, "BF16");
  const Tensor read_ties = file->tensor("ties");
  ASSERT_EQ(read_ties.dtype(), DType::BF16);
  EXPECT_THAT(bf16_bits(read_ties), ElementsAre(0x3f80, 0x3f82, 0x3f81, 0xbf80));
  std::vector<uint16_t> expected;
  for (float v : random.to_vector()) expected.push_back(float_to_bf16(v));
  EXPECT_EQ(bf16_bits(file->tensor("random")), expected);
}

TEST(SafetensorsRoundTrip, Bf16InputsAreCopiedOrWidenedExactly) {
  ScratchDir dir;
  write_safetensors(dir / "a.safetensors", {{"w", random_tensor({5, 3}, 3)}}, SafetensorsDType::BF16);
  const Tensor bf16 = SafetensorsFile::open(dir / "a.safetensors")->tensor("w");

  write_safetensors(dir / "b.safetensors", {{"w", bf16}}, SafetensorsDType::BF16);
  EXPECT_EQ(bf16_bits(SafetensorsFile::open(dir / "b.safetensors")->tensor("w")), bf16_bits(bf16));
  write_safetensors(dir / "c.safetensors", {{"w", bf16}}, SafetensorsDType::F32);
  EXPECT_EQ(f32_bits(SafetensorsFile::open(dir / "c.safetensors")->tensor("w")), f32_bits(bf16.to_f32()));
}

TEST(SafetensorsRoundTrip, RewritingReplacesTheFile) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  write_safetensors(path, {{"old", Tensor::zeros({2})}}, SafetensorsDType::F32);
  write_safetensors(path, {{"new", Tensor::full({3}, 2.0f)}}, SafetensorsDType::F32);
  auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file->entries().size(), 1u);
  EXPECT_EQ(file->tensor("new").to_vector(), (std::vector<float>{2, 2, 2}));
}

TEST(SafetensorsWrite, RejectsRepeatedReservedOrUndefinedTensorsAndLeavesNoFile) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  const Tensor x = Tensor::zeros({2});
  EXPECT_THAT(error_of([&] { write_safetensors(path, {{"x", x}, {"x", x}}, SafetensorsDType::F32); }),
              AllOf(HasSubstr(path), HasSubstr("'x'")));
  EXPECT_THAT(error_of([&] { write_safetensors(path, {{"__metadata__", x}}, SafetensorsDType::F32); }),
              HasSubstr("'__metadata__'"));
  EXPECT_THAT(error_of([&] { write_safetensors(path, {{"u", Tensor()}}, SafetensorsDType::F32); }),
              AllOf(HasSubstr(path), HasSubstr("'u'"), HasSubstr("undefined")));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".partial"));
}

TEST(SafetensorsF16, WidensNormalsSubnormalsInfinitiesAndNan) {
  ScratchDir dir;
  const std::string path = dir / "half.safetensors";
  const std::vector<uint16_t> halves = {0x0000, 0x8000, 0x3c00, 0xc000, 0x3555, 0x7bff, 0x0400,
                                        0x0001, 0x03ff, 0x8001, 0x7c00, 0xfc00, 0x7e00};
  const std::vector<float> expected = {0.0f,  -0.0f,        1.0f,      -2.0f,     0.333251953125f,
                                       65504, 0x1p-14f,     0x1p-24f,  1023 * 0x1p-24f, -0x1p-24f,
                                       INFINITY, -INFINITY, NAN};
  const std::string data(reinterpret_cast<const char*>(halves.data()), halves.size() * 2);
  write_raw(path, R"({"h":{"dtype":"F16","shape":[13],"data_offsets":[0,26]}})", data);

  const Tensor t = SafetensorsFile::open(path)->tensor("h");
  ASSERT_EQ(t.dtype(), DType::F32);
  const std::vector<float> got = t.to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i + 1 < got.size(); ++i) {
    EXPECT_EQ(got[i], expected[i]) << "half 0x" << std::hex << halves[i];
    EXPECT_EQ(std::signbit(got[i]), std::signbit(expected[i])) << "half 0x" << std::hex << halves[i];
  }
  EXPECT_TRUE(std::isnan(got.back()));
}

TEST(SafetensorsZeroCopy, F32AndBf16TensorsBorrowTheMappingAndKeepItAlive) {
  ScratchDir dir;
  write_safetensors(dir / "f32.safetensors", {{"w", random_tensor({64, 64}, 4)}}, SafetensorsDType::F32);
  write_safetensors(dir / "bf16.safetensors", {{"w", random_tensor({64, 64}, 4)}}, SafetensorsDType::BF16);
  auto f32 = SafetensorsFile::open(dir / "f32.safetensors");
  auto bf16 = SafetensorsFile::open(dir / "bf16.safetensors");

  const int64_t live_before = tensor_memory().live_bytes;
  const Tensor a = f32->tensor("w"), b = bf16->tensor("w");
  EXPECT_EQ(tensor_memory().live_bytes, live_before);  // nothing allocated for either
  EXPECT_EQ(a.data(), f32->tensor("w").data());         // both reads view the same bytes
  EXPECT_EQ(b.bf16_data(), bf16->tensor("w").bf16_data());

  const std::vector<float> values = a.to_vector();
  f32.reset();  // the tensor alone now holds the mapping
  EXPECT_EQ(a.to_vector(), values);
}

TEST(SafetensorsZeroCopy, WritingABorrowedTensorNeverReachesTheFile) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  write_safetensors(path, {{"w", Tensor::full({4}, 1.0f)}}, SafetensorsDType::F32);
  const std::string before = read_bytes(path);
  Tensor w = SafetensorsFile::open(path)->tensor("w");
  w.data()[0] = 5.0f;
  EXPECT_EQ(w.to_vector(), (std::vector<float>{5, 1, 1, 1}));
  EXPECT_EQ(read_bytes(path), before);
}

TEST(SafetensorsAlignment, TensorsAfterAnUnpaddedHeaderAreReadAligned) {
  ScratchDir dir;
  const std::string path = dir / "odd.safetensors";
  // A 1-byte gap makes both tensors start at odd addresses.
  const std::vector<float> f = {1.5f, -2.25f};
  const std::vector<uint16_t> h = {float_to_bf16(3.0f), float_to_bf16(-0.5f)};
  const std::string data = std::string(1, '\0') + std::string(reinterpret_cast<const char*>(f.data()), 8) +
                           std::string(reinterpret_cast<const char*>(h.data()), 4);
  write_raw(path,
            R"({"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},)"
            R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[9,13]}})",
            data);
  auto file = SafetensorsFile::open(path);
  const Tensor tf = file->tensor("f"), tb = file->tensor("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tf.data()) % alignof(float), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tb.bf16_data()) % alignof(uint16_t), 0u);
  EXPECT_EQ(tf.to_vector(), f);
  EXPECT_EQ(tb.to_vector(), (std::vector<float>{3.0f, -0.5f}));
}

TEST(SafetensorsLookup, UnknownTensorNamesTheFileAndKey) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  write_safetensors(path, {{"x", Tensor::zeros({1})}}, SafetensorsDType::F32);
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->find("y"), nullptr);
  EXPECT_THAT(error_of([&] { file->tensor("y"); }), AllOf(HasSubstr(path), HasSubstr("'y'")));
}

// ---- malformed files: each error names the file and the key or byte offset -----------------

TEST(SafetensorsBadInput, FileShorterThanTheLengthField) {
  ScratchDir dir;
  const std::string path = dir / "short.safetensors";
  write_bytes(path, "abc");
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("truncated: 3 bytes, need at least 8")));
}

TEST(SafetensorsBadInput, HeaderLengthPastTheEndOfTheFile) {
  ScratchDir dir;
  const std::string path = dir / "long.safetensors";
  write_bytes(path, le64(1000) + "{}");
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("header length 1000"), HasSubstr("10 bytes")));
}

TEST(SafetensorsBadInput, HeaderNotJsonGivesTheByteOffset) {
  ScratchDir dir;
  const std::string path = dir / "json.safetensors";
  write_raw(path, R"({"a": x})", "");  // 'x' is header byte 6, file byte 14
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("not valid JSON"), HasSubstr("byte offset 14")));
}

TEST(SafetensorsBadInput, HeaderNotAnObject) {
  ScratchDir dir;
  const std::string path = dir / "array.safetensors";
  write_raw(path, "[1, 2]", "");
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("not a JSON object")));
}

TEST(SafetensorsBadInput, EntryNotAnObject) {
  ScratchDir dir;
  const std::string path = dir / "entry.safetensors";
  write_raw(path, one_entry_header("w", "[0, 8]"), std::string(8, '\0'));
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("not an object")));
}

TEST(SafetensorsBadInput, EntryMissingAField) {
  ScratchDir dir;
  const std::string path = dir / "fields.safetensors";
  const std::map<std::string, std::string> without = {
      {"dtype", R"({"shape":[2],"data_offsets":[0,8]})"},
      {"shape", R"({"dtype":"F32","data_offsets":[0,8]})"},
      {"data_offsets", R"({"dtype":"F32","shape":[2]})"},
  };
  for (const auto& [field, entry] : without) {
    write_raw(path, one_entry_header("w", entry), std::string(8, '\0'));
    EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("no '" + field + "'")));
  }
}

TEST(SafetensorsBadInput, UnknownDtypeIsNamed) {
  ScratchDir dir;
  const std::string path = dir / "dtype.safetensors";
  write_raw(path, one_entry_header("w", R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})"),
            std::string(8, '\0'));
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("unknown dtype 'F33'")));
}

TEST(SafetensorsBadInput, RealButUnsupportedDtypesAreSaidToBeUnsupported) {
  ScratchDir dir;
  const std::string path = dir / "dtype.safetensors";
  for (const char* dtype : {"F64", "I64"}) {
    write_raw(path, one_entry_header("w", std::string(R"({"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,8]})"),
              std::string(8, '\0'));
    EXPECT_THAT(open_error(path),
                AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr(std::string("unsupported dtype ") + dtype)));
  }
}

TEST(SafetensorsBadInput, NegativeDimension) {
  ScratchDir dir;
  const std::string path = dir / "shape.safetensors";
  write_raw(path, one_entry_header("w", R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
            std::string(8, '\0'));
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("negative dimension")));
}

TEST(SafetensorsBadInput, ByteLengthDisagreesWithShapeAndDtype) {
  ScratchDir dir;
  const std::string path = dir / "length.safetensors";
  write_raw(path, one_entry_header("w", R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
            std::string(16, '\0'));
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("span 8 bytes"),
                                      HasSubstr("needs 12")));
}

TEST(SafetensorsBadInput, DataOffsetsOutsideTheDataSection) {
  ScratchDir dir;
  const std::string path = dir / "offsets.safetensors";
  write_raw(path, one_entry_header("w", R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})"),
            std::string(8, '\0'));
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("[4, 12]"),
                                      HasSubstr("data section of 8 bytes")));
}

TEST(SafetensorsBadInput, OverlappingTensorsNameBothKeys) {
  ScratchDir dir;
  const std::string path = dir / "overlap.safetensors";
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[20,24]},)"
            R"("c":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
            std::string(24, '\0'));
  EXPECT_THAT(open_error(path), AllOf(HasSubstr(path), HasSubstr("'a' [0, 16]"), HasSubstr("'c' [8, 16]"),
                                      HasSubstr("overlap")));
}

TEST(SafetensorsBadInput, UnclaimedBytesInTheDataSectionAreFine) {
  ScratchDir dir;
  const std::string path = dir / "gaps.safetensors";
  const float value = 7.0f;
  write_raw(path, one_entry_header("w", R"({"dtype":"F32","shape":[1],"data_offsets":[8,12]})"),
            std::string(8, '\0') + std::string(reinterpret_cast<const char*>(&value), 4) + std::string(8, '\0'));
  EXPECT_EQ(SafetensorsFile::open(path)->tensor("w").item(), 7.0f);
}

// ---- checkpoints: single file, index, directory ---------------------------------------------

// Two shards and their index in `dir`: a and b in shard 1, c in shard 2.
std::string write_sharded(const ScratchDir& dir) {
  write_safetensors(dir / "model-00001-of-00002.safetensors",
                    {{"b", Tensor::full({2}, 2.0f)}, {"a", Tensor::full({1}, 1.0f)}}, SafetensorsDType::F32);
  write_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", Tensor::full({3}, 3.0f)}},
                    SafetensorsDType::BF16);
  const std::string index = dir / "model.safetensors.index.json";
  write_bytes(index, R"({"metadata":{"total_size":28},"weight_map":{)"
                     R"("c":"model-00002-of-00002.safetensors",)"
                     R"("a":"model-00001-of-00002.safetensors",)"
                     R"("b":"model-00001-of-00002.safetensors"}})");
  return index;
}

void expect_sharded_contents(const SafetensorsCheckpoint& checkpoint, const ScratchDir& dir) {
  EXPECT_THAT(checkpoint.names(), ElementsAre("a", "b", "c"));
  EXPECT_EQ(checkpoint.file_of("a"), dir / "model-00001-of-00002.safetensors");
  EXPECT_EQ(checkpoint.file_of("c"), dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(checkpoint.entry("c").dtype, "BF16");
  EXPECT_EQ(checkpoint.tensor("b").to_vector(), (std::vector<float>{2, 2}));
  EXPECT_EQ(checkpoint.tensor("c").to_vector(), (std::vector<float>{3, 3, 3}));
}

TEST(SafetensorsCheckpointOpen, SingleFile) {
  ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  write_safetensors(path, {{"y", Tensor::zeros({1})}, {"x", Tensor::full({2}, 4.0f)}}, SafetensorsDType::F32);
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
  EXPECT_THAT(checkpoint.names(), ElementsAre("x", "y"));
  EXPECT_EQ(checkpoint.file_of("x"), path);
  EXPECT_EQ(checkpoint.tensor("x").to_vector(), (std::vector<float>{4, 4}));
  EXPECT_THAT(error_of([&] { checkpoint.entry("z"); }), AllOf(HasSubstr(path), HasSubstr("'z'")));
}

TEST(SafetensorsCheckpointOpen, ShardedThroughItsIndex) {
  ScratchDir dir;
  expect_sharded_contents(SafetensorsCheckpoint::open(write_sharded(dir)), dir);
}

TEST(SafetensorsCheckpointOpen, DirectoryPrefersItsIndex) {
  ScratchDir dir;
  write_sharded(dir);
  expect_sharded_contents(SafetensorsCheckpoint::open(dir.path().string()), dir);
}

TEST(SafetensorsCheckpointOpen, DirectoryWithOneFile) {
  ScratchDir dir;
  write_safetensors(dir / "only.safetensors", {{"x", Tensor::zeros({1})}}, SafetensorsDType::F32);
  EXPECT_EQ(SafetensorsCheckpoint::open(dir.path().string()).file_of("x"), dir / "only.safetensors");
}

TEST(SafetensorsCheckpointOpen, AmbiguousOrEmptyDirectoryListsWhatItFound) {
  ScratchDir dir;
  const std::string path = dir.path().string();
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(path); }), AllOf(HasSubstr(path), HasSubstr("neither")));
  write_safetensors(dir / "one.safetensors", {{"x", Tensor::zeros({1})}}, SafetensorsDType::F32);
  write_safetensors(dir / "two.safetensors", {{"x", Tensor::zeros({1})}}, SafetensorsDType::F32);
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(path); }),
              AllOf(HasSubstr(path), HasSubstr("one.safetensors, two.safetensors")));
}

TEST(SafetensorsBadIndex, MissingWeightMap) {
  ScratchDir dir;
  const std::string index = dir / "model.safetensors.index.json";
  write_bytes(index, R"({"metadata":{}})");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(index); }),
              AllOf(HasSubstr(index), HasSubstr("'weight_map'")));
}

TEST(SafetensorsBadIndex, NotJsonGivesTheByteOffset) {
  ScratchDir dir;
  const std::string index = dir / "model.safetensors.index.json";
  write_bytes(index, R"({"weight_map": })");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(index); }),
              AllOf(HasSubstr(index), HasSubstr("not valid JSON"), HasSubstr("byte offset 15")));
}

TEST(SafetensorsBadIndex, MissingShardNamesKeyAndShard) {
  ScratchDir dir;
  const std::string index = write_sharded(dir);
  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(index); }),
              AllOf(HasSubstr(index), HasSubstr("'c'"), HasSubstr("model-00002-of-00002.safetensors"),
                    HasSubstr("missing")));
}

TEST(SafetensorsBadIndex, KeyAbsentFromItsShard) {
  ScratchDir dir;
  const std::string index = write_sharded(dir);
  write_safetensors(dir / "model-00002-of-00002.safetensors", {{"d", Tensor::zeros({3})}},
                    SafetensorsDType::F32);
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(index); }),
              AllOf(HasSubstr(index), HasSubstr("'c'"), HasSubstr("model-00002-of-00002.safetensors")));
}

// ---- cross-check against an independent reader and writer (python: json + struct + numpy) ----

bool python_has_numpy() {
  return std::system(VDITKIT_PYTHON " -c 'import numpy' > /dev/null 2>&1") == 0;
}

// Runs `script` with the python that has numpy; true if it exits 0.
bool run_python(const ScratchDir& dir, const std::string& script) {
  const std::string path = dir / "check.py";
  write_bytes(path, script);
  return std::system((std::string(VDITKIT_PYTHON) + " " + path).c_str()) == 0;
}

const char* kPythonReader = R"(
import json, struct
import numpy as np

def read_safetensors(path):
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    assert (8 + n) % 8 == 0, 'header not padded'
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        buf = data[b:end]
        if e['dtype'] == 'F32':
            arr = np.frombuffer(buf, '<f4')
        else:
            assert e['dtype'] == 'BF16'
            arr = (np.frombuffer(buf, '<u2').astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(e['shape'])
    return header, out
)";

TEST(SafetensorsPython, OurFilesParseWithAnIndependentReader) {
  if (!python_has_numpy()) GTEST_SKIP() << "numpy is not available to " VDITKIT_PYTHON;
  ScratchDir dir;
  // Values exact in bf16, so both files must hold exactly 0.25 * (i - 6).
  std::vector<float> values;
  for (int i = 0; i < 12; ++i) values.push_back(0.25f * static_cast<float>(i - 6));
  const Tensor t = Tensor::from_vector({3, 4}, values);
  write_safetensors(dir / "f32.safetensors", {{"t", t}, {"s", Tensor::full({1}, 9.0f)}}, SafetensorsDType::F32,
                    {{"author", "vditkit"}});
  write_safetensors(dir / "bf16.safetensors", {{"t", t}}, SafetensorsDType::BF16);
  const std::string script = std::string(kPythonReader) + R"(
expected = (0.25 * (np.arange(12) - 6)).reshape(3, 4).astype(np.float32)
header, tensors = read_safetensors(')" + dir / "f32.safetensors" + R"(')
assert header['__metadata__'] == {'author': 'vditkit'}, header
assert list(header) == ['__metadata__', 't', 's'], list(header)
assert np.array_equal(tensors['t'], expected) and tensors['s'][0] == 9.0
_, tensors = read_safetensors(')" + dir / "bf16.safetensors" + R"(')
assert np.array_equal(tensors['t'], expected)
)";
  EXPECT_TRUE(run_python(dir, script));
}

TEST(SafetensorsPython, FilesWrittenByNumpyReadBackExactly) {
  if (!python_has_numpy()) GTEST_SKIP() << "numpy is not available to " VDITKIT_PYTHON;
  ScratchDir dir;
  const std::string path = dir / "numpy.safetensors";
  // Unpadded header (the length is forced odd), little-endian data straight from numpy.
  const std::string script = R"(
import json, struct
import numpy as np
f32 = (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3)
f16 = np.array([1.0, -0.5, 1023 * 2.0 ** -24, 2.0 ** -24, np.inf], dtype='<f2')  # two subnormals
bf16 = (np.array([1.0, 2.0, -3.0], dtype='<f4').view(np.uint32) >> 16).astype('<u2')
blobs = [('a', 'F32', f32), ('h', 'F16', f16), ('b', 'BF16', bf16)]
header, data = {}, b''
for name, dtype, arr in blobs:
    raw = arr.astype(arr.dtype.newbyteorder('<')).tobytes()
    header[name] = {'dtype': dtype, 'shape': list(arr.shape), 'data_offsets': [len(data), len(data) + len(raw)]}
    data += raw
text = json.dumps(header).encode()
if len(text) % 2 == 0:
    text += b' '
open(')" + path + R"(', 'wb').write(struct.pack('<Q', len(text)) + text + data)
)";
  ASSERT_TRUE(run_python(dir, script));
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->tensor("a").shape(), (Shape{2, 3}));
  EXPECT_EQ(file->tensor("a").to_vector(), (std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f}));
  const std::vector<float> h = file->tensor("h").to_vector();
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -0.5f);
  EXPECT_EQ(h[2], 1023 * 0x1p-24f);
  EXPECT_EQ(h[3], 0x1p-24f);
  EXPECT_EQ(h[4], INFINITY);
  EXPECT_EQ(file->tensor("b").to_vector(), (std::vector<float>{1.0f, 2.0f, -3.0f}));
}

}  // namespace
}  // namespace vdit
