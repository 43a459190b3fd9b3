// Fuzzes the latent dataset reader: the input is a dataset .h5 (groups of latents, context and
// an optional prompt attribute), opened and then read sample by sample as training does.
#include "data/latent_dataset.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdit;
  const std::string path =
      fuzz::write_file(fuzz::scratch_dir() / "data.h5", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] {
    const LatentDataset dataset = LatentDataset::open({path});
    for (int64_t i = 0; i < dataset.size(); ++i) dataset.read(i);
  });
  return 0;
}
