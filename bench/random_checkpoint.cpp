#include "bench/random_checkpoint.h"

#include <cmath>

#include "autograd/random.h"
#include "data/model_config.h"
#include "data/safetensors.h"

namespace vdit::bench {

int64_t write_random_checkpoint(const std::string& path, const VDiTConfig& config) {
  Rng rng(1);
  int64_t count = 0;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const ParamSpec& spec : wan_parameter_specs(config)) {
    Tensor t = Tensor::empty(spec.shape);
    const double bound = std::sqrt(3.0 / static_cast<double>(spec.shape.back()));
    float* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
    tensors.emplace_back(spec.name, t.to_bf16());  // one float32 tensor alive at a time
    count += t.numel();
  }
  write_safetensors(path, tensors, SafetensorsDType::BF16, {{"config", config_to_json(config).dump()}});
  return count;
}

}  // namespace vdit::bench
