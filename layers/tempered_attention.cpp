#include "layers/tempered_attention.h"

namespace vdit {

Tensor tempered_attention(const Tensor& q_in, const Tensor& k, const Tensor& v, AttentionOptions options,
                          const Tensor& log_temperature, const AttentionSite& site) {
  // On a GPU the temperature divides the queries instead (q / tau per head, as PyTorch's
  // bench does; log tau gets its gradient through these ops), so that the attention has no
  // temperature and cuDNN's fused kernel, which takes none per head, can serve it. On the CPU
  // the fused temperature stays: rounding q / tau would move the CPU's numbers.
  const bool fold = log_temperature.defined() && q_in.is_cuda();
  const Tensor q = fold ? mul(q_in, reshape(exp(scale(log_temperature, -1.0f)), {1, 1, -1, 1})) : q_in;
  if (log_temperature.defined() && !fold) {
    const int64_t heads = q.size(2);
    const Tensor tau = exp(log_temperature);
    // One temperature for the whole block is broadcast to every head.
    options.temperature = tau.numel() == heads ? tau : add(Tensor::zeros({heads}, DType::F32, tau.device()), tau);
  }
  Tensor a;
  if (site.probe) a = site.probe->observe({site.block, site.kind, q, k, v, options, site.joint});
  if (!a.defined()) a = attention(q, k, v, options);
  return a;
}

}  // namespace vdit
