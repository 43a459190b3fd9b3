// Fuzzes the temperature-adapter reader: the input is an adapter.h5 (a model_identity string
// attribute and log-temperature datasets), read as `forward --adapter` would.
#include "data/adapter.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdit;
  const std::string path =
      fuzz::write_file(fuzz::scratch_dir() / "adapter.h5", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] { read_adapter(path); });
  return 0;
}
