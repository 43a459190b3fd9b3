// Fuzzes the run-state reader: the input is a checkpoint's `state` file (a Boost.Serialization
// text archive), read as `retrain --resume` does. A state that loads must save and load back to
// the same archive text (text, not operator==, so that a NaN loss compares equal to itself).
#include <sstream>

#include "fuzz/fuzz_input.h"
#include "train/run_state.h"

namespace {

std::string contents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdit;
  const std::filesystem::path dir = fuzz::scratch_dir();
  const std::string path = fuzz::write_file(dir / "state", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] {
    const std::string once = (dir / "once").string(), twice = (dir / "twice").string();
    RunState::load(path).save(once);
    RunState::load(once).save(twice);
    if (contents(once) != contents(twice)) {
      std::fprintf(stderr, "fuzz: the run state changed in a save and load:\n%s\n%s\n", contents(once).c_str(),
                   contents(twice).c_str());
      std::abort();
    }
  });
  return 0;
}
