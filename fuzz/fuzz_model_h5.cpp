// Fuzzes the vditkit HDF5 model reader: the input is a model.h5 (config attributes and one
// dataset per parameter), loaded as `vditkit inspect` or `retrain --model` would.
#include "data/model_io.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdit;
  const std::string path =
      fuzz::write_file(fuzz::scratch_dir() / "model.h5", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] { load_model(path); });
  return 0;
}
