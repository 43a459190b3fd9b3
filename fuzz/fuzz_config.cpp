// Fuzzes the config reader: a config.json of either layout (original or diffusers), completed
// from parameter shapes where it lacks fields. The input is the config.json, optionally
// followed (fuzz_input.h's separator) by a JSON object of shapes, {"patch_embedding.weight":
// [12, 4, 1, 2, 2], ...}, standing for the tensors of a checkpoint. A config that resolves must
// survive both layouts' round trip unchanged.
#include <nlohmann/json.hpp>

#include "data/model_config.h"
#include "fuzz/fuzz_input.h"

namespace {

// The shapes part; not what is fuzzed here, so a malformed one means no shapes.
std::map<std::string, vdit::Shape> shapes_of(const std::string& text) {
  std::map<std::string, vdit::Shape> shapes;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return shapes;
  for (const auto& [key, dims] : j.items()) {
    if (!dims.is_array()) continue;
    vdit::Shape shape;
    for (const auto& d : dims)
      if (d.is_number_integer()) shape.push_back(d.get<int64_t>());
    shapes[key] = shape;
  }
  return shapes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdit;
  const std::vector<std::string> files = fuzz::split_files(data, size);
  const std::string path = fuzz::write_file(fuzz::scratch_dir() / "config.json", files[0]);
  const std::map<std::string, Shape> shapes = files.size() > 1 ? shapes_of(files[1]) : std::map<std::string, Shape>{};
  fuzz::expect_success_or_error([&] {
    const VDiTConfig config = resolve_config(read_config_json(path), shapes, path);
    for (const nlohmann::json& written : {config_to_json(config), config_to_diffusers_json(config)}) {
      if (resolve_config(normalize_config_json(written, "round trip"), {}, "round trip") != config) {
        std::fprintf(stderr, "fuzz: config changed in a round trip through %s\n", written.dump().c_str());
        std::abort();
      }
    }
  });
  return 0;
}
