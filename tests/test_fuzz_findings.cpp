// Inputs the fuzz targets (fuzz/) found crashing or exhausting a reader, kept as fixtures in
// tests/fuzz_findings/<target>/: each now gets a vdit::Error that names the file and what is
// wrong, without allocating what the corrupt input claims.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "data/adapter.h"
#include "data/latent_dataset.h"
#include "data/model_config.h"
#include "data/model_io.h"
#include "data/safetensors.h"
#include "tests/fixtures.h"
#include "train/run_state.h"

namespace vdit {
namespace {

std::string finding(const std::string& name) { return std::string(VDITKIT_SOURCE_DIR) + "/tests/fuzz_findings/" + name; }

// A run_config string length of 2.4e15 in a 400-byte state file: Boost resized the string
// first (ASan: allocation-size-too-big).
TEST(FuzzFindings, RunStateWithAHugeStringLengthIsRefusedBeforeAllocating) {
  const std::string path = finding("fuzz_run_state/huge-run-config-length");
  const std::string message = testing::error_of([&] { RunState::load(path); });
  EXPECT_NE(message.find("run state " + path + " is corrupt"), std::string::npos) << message;
  EXPECT_NE(message.find("run_config claims 2414986023876344 elements, but only"), std::string::npos) << message;
}

// The same for the sampler's order: 3e11 batches claimed in a 400-byte file.
TEST(FuzzFindings, RunStateWithAHugeOrderCountIsRefusedBeforeAllocating) {
  const std::string path = finding("fuzz_run_state/huge-order-count");
  const std::string message = testing::error_of([&] { RunState::load(path); });
  EXPECT_NE(message.find("run state " + path + " is corrupt"), std::string::npos) << message;
  EXPECT_NE(message.find("order claims 300000000000 elements, but only"), std::string::npos) << message;
}

// The archive's own header: its first number sizes the signature string Boost reads, and a
// corrupt one allocated 7e15 bytes (ASan) or spent seconds filling a gigabyte (a timeout).
TEST(FuzzFindings, RunStateWithACorruptArchiveHeaderIsRefusedBeforeAllocating) {
  for (const char* name : {"huge-signature-length", "slow-signature-length"}) {
    const std::string path = finding(std::string("fuzz_run_state/") + name);
    const std::string message = testing::error_of([&] { RunState::load(path); });
    EXPECT_NE(message.find("run state " + path + " is corrupt: it does not start with '22 serialization::archive '"),
              std::string::npos) << message;
  }
}

// A number beyond double (1e400) in config.json: nlohmann throws out_of_range, not parse_error,
// and the raw library exception escaped the reader without naming the file.
TEST(FuzzFindings, ConfigWithANumberBeyondDoubleNamesTheFile) {
  const std::string path = finding("fuzz_config/number-overflow.json");
  const std::string message = testing::error_of([&] { read_config_json(path); });
  EXPECT_NE(message.find(path + ": malformed JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("number overflow parsing '1e400'"), std::string::npos) << message;
}

// A config.json whose model_type was mutated to "t2)v": it was accepted and then lost in a round
// trip through diffusers' config.json (which has no model_type), so the config changed.
TEST(FuzzFindings, ConfigWithAnUnknownModelTypeIsRefused) {
  const std::string path = finding("fuzz_config/unknown-model-type.json");
  const std::string message = testing::error_of([&] { resolve_config(read_config_json(path), {}, path); });
  EXPECT_NE(message.find(path + ": config: model_type 't2)v' is not supported"), std::string::npos) << message;
}

// The same number in a safetensors header (the parser the config reader shares the fault with).
TEST(FuzzFindings, SafetensorsHeaderWithANumberBeyondDoubleNamesTheFile) {
  testing::ScratchDir dir;
  const std::string header = R"({"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})";
  const uint64_t length = header.size();
  std::ofstream(dir / "big.safetensors", std::ios::binary)
      .write(reinterpret_cast<const char*>(&length), 8)
      .write(header.data(), static_cast<std::streamsize>(length))
      .write("\0\0\0\0", 4);
  const std::string message = testing::error_of([&] { SafetensorsFile::open(dir / "big.safetensors"); });
  EXPECT_NE(message.find(dir / "big.safetensors" + ": header is not valid JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("number overflow"), std::string::npos) << message;
}

// A sample whose `context` is a compact dataset (data kept in the object header) holding no
// bytes for its extents: HDF5 1.10's H5Dread copied from a null buffer (SEGV).
TEST(FuzzFindings, CompactDatasetHoldingLessThanItsExtentsIsAnError) {
  const std::string path = finding("fuzz_latent_dataset/compact-without-data.h5");
  const std::string message = testing::error_of([&] {
    const LatentDataset dataset = LatentDataset::open({path});
    for (int64_t i = 0; i < dataset.size(); ++i) dataset.read(i);
  });
  EXPECT_NE(message.find(path + ": dataset '/sample_"), std::string::npos) << message;
  EXPECT_NE(message.find("/context' has extents [2, 4] (32 bytes) but stores 0 bytes"), std::string::npos) << message;
}

// An adapter whose root group is an old-style symbol table with a local heap cut to 24 bytes, so
// a link name runs past its end: HDF5 1.10's H5Literate copied it with strdup past the heap
// (ASan: heap-buffer-overflow in H5G__ent_to_link).
TEST(FuzzFindings, GroupWhoseLinkNamesRunPastTheirHeapIsAnError) {
  const std::string path = finding("fuzz_adapter/local-heap-without-nul.h5");
  const std::string message = testing::error_of([&] { read_adapter(path); });
  EXPECT_NE(message.find(path + ": group '/': the link name at heap offset 8 (recorded at byte offset 1168) does not "
                                "end inside the group's local heap of 24 bytes: a corrupt file"),
            std::string::npos) << message;
}

// An adapter whose root attribute model_identity claims a dataspace of 1,032 bytes in a 56-byte
// message, and a model whose config attribute in_dim claims 32,776: HDF5 1.10's
// H5Aexists_by_name decoded them and copied the attributes' data from past the object header's
// buffer (ASan: heap-buffer-overflow in H5O__msg_iterate_real).
TEST(FuzzFindings, AttributeWhoseDataspaceRunsPastItsMessageIsAnError) {
  const struct {
    std::string input;
    std::function<void(const std::string&)> read;
    std::string expected;
  } cases[] = {
      {"fuzz_adapter/attribute-dataspace-past-its-message.h5", [](const std::string& p) { read_adapter(p); },
       ": group '/': its attribute message 'model_identity' (byte offset 864): dataspace of 1032 bytes runs past the "
       "end (24 bytes left)"},
      {"fuzz_model_h5/attribute-dataspace-past-its-message.h5", [](const std::string& p) { load_model(p); },
       ": group '/': its attribute message 'in_dim' (byte offset 1168): dataspace of 32776 bytes runs past the end "
       "(16 bytes left)"},
  };
  for (const auto& c : cases) {
    const std::string path = finding(c.input);
    const std::string message = testing::error_of([&] { c.read(path); });
    EXPECT_NE(message.find(path + c.expected), std::string::npos) << message;
  }
}

// A sample group whose object header continues in a chunk of 16 GiB in a 6 KiB file: HDF5 1.10
// allocated the chunk at that size before reading it (libFuzzer: malloc over its 2 GiB limit),
// from H5Oget_info while listing the file's groups.
TEST(FuzzFindings, HeaderContinuationBeyondTheFileIsRefusedBeforeAllocating) {
  const std::string path = finding("fuzz_latent_dataset/continuation-chunk-of-16-gib.h5");
  const std::string message = testing::error_of([&] { LatentDataset::open({path}); });
  EXPECT_NE(message.find(path + ": object '/sample_000000' (object header at byte offset 800): a chunk: 17179869256 "
                                "bytes at byte offset 4752 lie beyond the end of the file (6472 bytes)"),
            std::string::npos) << message;
}

// A dataset file whose root group's local heap has a free block naming itself as the next: HDF5
// 1.10 walked that free list without end, allocating a node per step (libFuzzer: out of memory
// after 34 million allocations, in H5HL_protect under H5Literate while listing the samples).
// The same file with the free list's head set to the undefined address (all ones): the guard's
// first bound check overflowed and let it through to an out-of-range read (fuzzing the guard).
TEST(FuzzFindings, LocalHeapWhoseFreeListLoopsIsAnError) {
  const struct {
    std::string input, expected;
  } cases[] = {
      {"fuzz_latent_dataset/local-heap-free-list-loop.h5", "loops (more blocks than its 88 bytes hold)"},
      {"fuzz_latent_dataset/local-heap-free-list-undefined.h5",
       "names a block at heap offset 18446744073709551615 beyond its 88 bytes"},
  };
  for (const auto& c : cases) {
    const std::string path = finding(c.input);
    const std::string message = testing::error_of([&] { LatentDataset::open({path}); });
    EXPECT_NE(message.find(path + ": group '/': its local heap's free list " + c.expected +
                           " (heap data at byte offset 712): a corrupt file"),
              std::string::npos) << message;
  }
}

// A comment message of 0 bytes in a dataset's header: its NUL was searched for in no bytes at
// all, from an empty buffer's null pointer (UBSan: null passed to memchr, in the header guard).
TEST(FuzzFindings, EmptyCommentMessageIsAnError) {
  const std::string path = finding("fuzz_adapter/empty-comment-message.h5");
  const std::string message = testing::error_of([&] { read_adapter(path); });
  EXPECT_NE(message.find(path + ": object '/blocks.0.self_attn.log_temperature': its comment message (byte offset "
                                "1712): comment has no terminating NUL within its 0 bytes"),
            std::string::npos) << message;
}

// in_dim written as a 33-digit literal, which JSON parsers read as a float (2.7e32): nlohmann
// cast it to int64 (UBSan: outside the range of representable values).
TEST(FuzzFindings, ConfigIntegerBeyondInt64IsAnError) {
  const std::string path = finding("fuzz_config/integer-beyond-int64.json");
  const std::string message = testing::error_of([&] { resolve_config(read_config_json(path), {}, path); });
  EXPECT_NE(message.find(path + ": bad config value: "), std::string::npos) << message;
  EXPECT_NE(message.find("in_dim is 2.6666666666666667e+32, not an integer within int64's range"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace vdit
