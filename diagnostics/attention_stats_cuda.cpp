// attention_statistics for q and k on a CUDA device: q and k narrowed to bf16 (the operands of
// the tensor cores, as in the attention op), the passes of attention_stats_kernels.cuh, one copy
// of the per-head sums to the host, finished by finish_head_stats exactly as on the CPU.
#if VDITKIT_CUDA
#include <climits>
#include <cmath>

#include "autograd/check.h"
#include "autograd/cuda/attention_stats_kernels.cuh"
#include "autograd/cuda/runtime.h"
#include "autograd/cuda_backend.h"
#include "diagnostics/attention_stats_sums.h"
#include "diagnostics/diagnostics_cuda.h"

namespace vdit {

namespace {

// Device storage of at least `bytes` (Tensor storage: the caching allocator, 256-byte aligned).
Tensor device_bytes(size_t bytes, Device device) {
  return Tensor::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, DType::F32, device);
}

template <class T>
std::vector<T> to_host(const Tensor& t, size_t n) {
  std::vector<T> host(n);
  cuda_backend().copy(host.data(), Device::cpu(), t.storage(), t.device(), n * sizeof(T));
  return host;
}

}  // namespace

std::vector<HeadStats> attention_statistics_cuda(const Tensor& q_in, const Tensor& k_in, float scale,
                                                 const std::vector<float>& temperature, const TokenGrid* grid,
                                                 const AttentionStatsOptions& options) {
  VDIT_CHECK(q_in.device() == k_in.device(), "attention statistics: q is on " << to_string(q_in.device()) << ", k on "
                                                                              << to_string(k_in.device()));
  const Device device = q_in.device();
  const Tensor q = q_in.to_bf16(), k = k_in.to_bf16();
  const int64_t n_q = q.size(0), n_k = k.size(0), heads = q.size(1);
  VDIT_CHECK(n_q < INT_MAX / 2 && n_k < INT_MAX / 2,
             "attention statistics (CUDA): " << n_q << " queries and " << n_k << " keys exceed the kernels' int range");
  const Tensor tau = temperature.empty() ? Tensor() : Tensor::from_vector({heads}, temperature).to(device);
  const TokenGroups query_groups(n_q, std::min(options.max_pooled, n_q)), key_groups(n_k, std::min(options.max_pooled, n_k));

  cuda::AttentionStatsProblem p;
  p.q = static_cast<const __nv_bfloat16*>(q.storage());
  p.k = static_cast<const __nv_bfloat16*>(k.storage());
  p.temperature = tau.defined() ? static_cast<const float*>(tau.storage()) : nullptr;
  p.scale = scale;
  p.q_len = static_cast<int>(n_q), p.k_len = static_cast<int>(n_k), p.heads = static_cast<int>(heads);
  p.head_dim = static_cast<int>(q.size(2));
  if (grid) p.frames = static_cast<int>(grid->frames), p.height = static_cast<int>(grid->height), p.width = static_cast<int>(grid->width);
  p.query_groups = static_cast<int>(query_groups.count()), p.key_groups = static_cast<int>(key_groups.count());
  p.sink_threshold = static_cast<float>(options.sink_threshold);

  const cuda::AttentionStatsLayout layout = cuda::attention_stats_layout(p);
  const size_t sum_count = static_cast<size_t>(heads) * layout.per_head(), mass_count = static_cast<size_t>(heads * n_k);
  const Tensor sums = device_bytes(sum_count * sizeof(double), device);
  const Tensor key_mass = device_bytes(mass_count * sizeof(unsigned long long), device);
  const size_t workspace_bytes = cuda::attention_stats_workspace_bytes(p);
  const Tensor workspace = device_bytes(workspace_bytes, device);
  {
    cuda::DeviceGuard guard(device.index);
    const std::string error =
        cuda::attention_stats(p, static_cast<double*>(sums.storage()), static_cast<unsigned long long*>(key_mass.storage()),
                              workspace.storage(), workspace_bytes, cuda::stream(device.index));
    VDIT_CHECK(error.empty(), error);
  }
  const std::vector<double> host = to_host<double>(sums, sum_count);
  const std::vector<unsigned long long> mass = to_host<unsigned long long>(key_mass, mass_count);

  std::vector<HeadStats> stats;
  for (int64_t h = 0; h < heads; ++h) {
    const double* s = host.data() + h * layout.per_head();
    // A NaN or infinity in q or k reaches every statistic through the log-sum-exp.
    VDIT_CHECK(std::isfinite(s[0]), "attention statistics: the queries or keys are not finite");
    HeadSums head;
    head.entropy = s[0];
    head.collapsed = s[2];
    head.keys_90 = s[4], head.keys_90_sq = s[5];
    head.keys_95 = s[6], head.keys_95_sq = s[7];
    for (int f = 0; f < layout.frame_bins; ++f) head.frame_distance.push_back(s[2 * (4 + f)]);
    for (int r = 0; r < layout.ring_bins; ++r) head.ring.push_back(s[2 * (4 + layout.frame_bins + r)]);
    head.pooled.assign(s + 2 * layout.totals, s + 2 * layout.totals + layout.pooled);
    head.key_mass.resize(n_k);
    for (int64_t j = 0; j < n_k; ++j) head.key_mass[j] = std::ldexp(static_cast<double>(mass[h * n_k + j]), -32);
    stats.push_back(finish_head_stats(head, n_q, n_k, options.top_sinks, query_groups, key_groups));
  }
  return stats;
}

}  // namespace vdit
#endif
