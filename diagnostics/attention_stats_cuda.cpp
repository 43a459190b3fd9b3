// attention_statistics for q and k on a CUDA device: q and k narrowed to bf16 (the operands of
// the tensor cores, as in the attention op), the passes of attention_stats_kernels.cuh, one copy
// of the per-head sums to the host, finished by finish_head_stats exactly as on the CPU; and,
// for diagnose, the sparsified attention of the same call from the selection those passes find.
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

// The sparsified attention's last passes over the selection the statistics found: the probed
// queries' rows [ceil(Nq / stride), H, hd] bf16.
Tensor sparse_output(const cuda::AttentionStatsProblem& stats, const cuda::TopKSelection& selection, const Tensor& v16) {
  Tensor out = Tensor::empty({stats.q_len, stats.heads, stats.head_dim}, DType::BF16, v16.device());
  cuda::SparseAttentionProblem p;
  p.q = stats.q, p.k = stats.k, p.v = static_cast<const __nv_bfloat16*>(v16.storage());
  p.temperature = stats.temperature, p.scale = stats.scale;
  p.q_len = stats.q_len, p.k_len = stats.k_len, p.heads = stats.heads, p.head_dim = stats.head_dim, p.keep = stats.keep;
  p.query_stride = stats.query_stride;
  const std::string error = cuda::sparse_attention_output(p, selection, static_cast<__nv_bfloat16*>(out.storage()),
                                                           cuda::stream(v16.device().index));
  VDIT_CHECK(error.empty(), error);
  return out;
}

template <class T>
std::vector<T> to_host(const Tensor& t, size_t n) {
  std::vector<T> host(n);
  cuda_backend().copy(host.data(), Device::cpu(), t.storage(), t.device(), n * sizeof(T));
  return host;
}

// What the statistics also compute when diagnose wants the sparsified attention of the same
// call: v, the keys each query keeps, and the probed queries' output rows.
struct SparseRequest {
  const Tensor& v;
  int64_t keep;
  Tensor out;
};

std::vector<HeadStats> statistics(const Tensor& q_in, const Tensor& k_in, float scale, const std::vector<float>& temperature,
                                  const TokenGrid* grid, const AttentionStatsOptions& options, SparseRequest* sparse) {
  VDIT_CHECK(q_in.device() == k_in.device(), "attention statistics: q is on " << to_string(q_in.device()) << ", k on "
                                                                              << to_string(k_in.device()));
  const Device device = q_in.device();
  const Tensor q = q_in.to_bf16(), k = k_in.to_bf16();
  const int64_t n_q = q.size(0), n_k = k.size(0), heads = q.size(1);
  VDIT_CHECK(n_q < INT_MAX / 2 && n_k < INT_MAX / 2,
             "attention statistics (CUDA): " << n_q << " queries and " << n_k << " keys exceed the kernels' int range");
  const Tensor tau = temperature.empty() ? Tensor() : Tensor::from_vector({heads}, temperature).to(device);
  const int64_t stride = probe_stride(n_q), probed = (n_q + stride - 1) / stride;
  const TokenGroups query_groups(probed, std::min(options.max_pooled, probed)),
      key_groups(n_k, std::min(options.max_pooled, n_k));

  cuda::AttentionStatsProblem p;
  p.q = static_cast<const __nv_bfloat16*>(q.storage());
  p.k = static_cast<const __nv_bfloat16*>(k.storage());
  p.temperature = tau.defined() ? static_cast<const float*>(tau.storage()) : nullptr;
  p.scale = scale;
  p.q_len = static_cast<int>(probed), p.k_len = static_cast<int>(n_k), p.heads = static_cast<int>(heads);
  p.query_stride = static_cast<int>(stride);
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
  Tensor selection_bytes;
  cuda::TopKSelection selection;
  if (sparse) {
    p.keep = static_cast<int>(sparse->keep);
    selection_bytes = device_bytes(cuda::topk_selection_bytes(p.heads, p.q_len), device);
    selection = cuda::carve_topk_selection(selection_bytes.storage(), p.heads, p.q_len).first;
  }
  {
    cuda::DeviceGuard guard(device.index);
    const std::string error =
        cuda::attention_stats(p, static_cast<double*>(sums.storage()), static_cast<unsigned long long*>(key_mass.storage()),
                              workspace.storage(), workspace_bytes, cuda::stream(device.index), sparse ? &selection : nullptr);
    VDIT_CHECK(error.empty(), error);
    if (sparse) sparse->out = sparse_output(p, selection, sparse->v.to_bf16());
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
    stats.push_back(finish_head_stats(head, probed, n_k, options.top_sinks, query_groups, key_groups));
  }
  return stats;
}

}  // namespace

std::vector<HeadStats> attention_statistics_cuda(const Tensor& q, const Tensor& k, float scale,
                                                 const std::vector<float>& temperature, const TokenGrid* grid,
                                                 const AttentionStatsOptions& options) {
  return statistics(q, k, scale, temperature, grid, options, nullptr);
}

StatsAndSparse attention_statistics_and_sparse_cuda(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                                                    const std::vector<float>& temperature, const TokenGrid* grid,
                                                    const AttentionStatsOptions& options, int64_t keep) {
  VDIT_CHECK(v.device() == q.device() && v.ndim() == 3 && v.size(0) == k.size(0) && v.size(1) == k.size(1) &&
                 v.size(2) == q.size(2) && keep >= 1 && keep <= k.size(0),
             "attention statistics with sparse attention: v " << to_string(v.shape()) << " on " << to_string(v.device())
                                                              << " for k " << to_string(k.shape()) << ", keep " << keep);
  SparseRequest sparse{v, keep, {}};
  StatsAndSparse out;
  out.stats = statistics(q, k, scale, temperature, grid, options, &sparse);
  out.sparse = sparse.out;
  out.query_stride = probe_stride(q.size(0));
  return out;
}

int64_t probe_stride(int64_t n_q) { return (n_q + kProbedQueries - 1) / kProbedQueries; }

}  // namespace vdit
#endif
