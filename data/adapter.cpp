#include "data/adapter.h"

#include <cstring>

#include "autograd/check.h"
#include "data/hdf5_file.h"
#include "data/model_config.h"

namespace vdit {

namespace {

// 64-bit FNV-1a over bytes, then mixed word by word: fast enough for gigabytes of weights.
struct Hasher {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
};

bool is_temperature(const std::string& key) {
  return key.size() > 16 && key.compare(key.size() - 16, 16, ".log_temperature") == 0;
}

}  // namespace

std::string model_identity(const VDiTConfig& config, const ParameterMap& params) {
  return model_identity(config_to_json(config), params);
}

std::string model_identity(const nlohmann::json& config, const ParameterMap& params) {
  Hasher hasher;
  const std::string c = config.dump();
  hasher.bytes(c.data(), c.size());
  for (const auto& [key, tensor] : params) {
    if (is_temperature(key)) continue;
    hasher.bytes(key.data(), key.size());
    const Tensor values = tensor.to_f32();
    hasher.bytes(values.data(), static_cast<size_t>(values.numel()) * sizeof(float));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hasher.h));
  return hex;
}

void write_adapter(const std::string& path, const Adapter& adapter) {
  write_hdf5_atomically(path, [&](Hdf5File& file) {
    file.write_string("model_identity", adapter.model_identity);
    for (const auto& [key, value] : adapter.log_temperatures) file.write(key, value);
  });
}

Adapter read_adapter(const std::string& path) {
  const Hdf5File file(path, Hdf5File::Mode::Read);
  VDIT_CHECK(file.has_attribute("model_identity"), path << ": not a vditkit adapter (no model_identity attribute)");
  Adapter adapter;
  adapter.model_identity = file.read_string("model_identity");
  for (const std::string& key : file.datasets()) {
    VDIT_CHECK(is_temperature(key), path << ": unexpected dataset '" << key << "' in an adapter");
    adapter.log_temperatures[key] = file.read(key);
  }
  return adapter;
}

void apply_adapter(const std::string& path, const Adapter& adapter, const std::string& identity, ParameterMap& params) {
  VDIT_CHECK(adapter.model_identity == identity, path << ": adapter made for model " << adapter.model_identity
                                                      << ", not for this one (" << identity << ")");
  for (const auto& [key, value] : adapter.log_temperatures) params[key] = value;
}

}  // namespace vdit
