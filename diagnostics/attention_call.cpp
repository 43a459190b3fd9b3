#include "diagnostics/attention_call.h"

#include <cmath>

#include "autograd/check.h"

namespace vdit {

Tensor batch_row(const Tensor& t, int64_t row) {
  return t.size(0) == 1 ? t.detach() : slice(t.detach(), 0, row, row + 1);
}

Tensor sample_heads(const Tensor& t, int64_t row) { return reshape(batch_row(t, row), {t.size(1), t.size(2), t.size(3)}); }

std::vector<float> temperatures(const AttentionOptions& options, int64_t heads) {
  if (!options.temperature.defined()) return {};
  std::vector<float> tau = options.temperature.to_vector();
  VDIT_CHECK(static_cast<int64_t>(tau.size()) == heads, "temperature has " << tau.size() << " values for " << heads << " heads");
  return tau;
}

float attention_scale(const AttentionOptions& options, const Tensor& q) {
  return options.scale > 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(q.size(3)));
}

}  // namespace vdit
