// Fuzzes the safetensors reader: the header of one file, or a sharded checkpoint's
// *.safetensors.index.json with its shards. An input of one file is model.safetensors; an input
// of several (fuzz_input.h's separator) is the index followed by shard-1.safetensors,
// shard-2.safetensors, ... Every tensor the reader accepts is read to its last element.
#include "data/safetensors.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdit;
  const std::filesystem::path dir = fuzz::scratch_dir();
  const std::vector<std::string> files = fuzz::split_files(data, size);
  std::string path;
  if (files.size() == 1) {
    path = fuzz::write_file(dir / "model.safetensors", files[0]);
  } else {
    path = fuzz::write_file(dir / "model.safetensors.index.json", files[0]);
    for (size_t i = 1; i < files.size(); ++i)
      fuzz::write_file(dir / ("shard-" + std::to_string(i) + ".safetensors"), files[i]);
  }
  fuzz::expect_success_or_error([&] {
    const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
    volatile float sink = 0.0f;
    for (const std::string& name : checkpoint.names()) {
      const Tensor t = checkpoint.tensor(name).to_f32();
      if (t.numel() > 0) sink = sink + t.data()[0] + t.data()[t.numel() - 1];
    }
  });
  return 0;
}
