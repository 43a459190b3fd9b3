#pragma once
// What the CPU path (attention_stats.cpp) and the GPU path (attention_stats_cuda.cpp) of the
// attention statistics share: the token groups of the pooled map and the sums over queries
// that every statistic of a head finishes from, so both report through the same arithmetic.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "diagnostics/attention_stats.h"

namespace vdit {

// n tokens cut into `groups` contiguous ranges, as equal as possible: group g is
// [g n / groups, (g + 1) n / groups) rounded down.
class TokenGroups {
 public:
  TokenGroups(int64_t n, int64_t groups) : start_(groups + 1) {
    for (int64_t g = 0; g <= groups; ++g) start_[g] = g * n / groups;
  }
  int64_t count() const { return static_cast<int64_t>(start_.size()) - 1; }
  int64_t begin(int64_t g) const { return start_[g]; }
  int64_t size(int64_t g) const { return start_[g + 1] - start_[g]; }
  int64_t group_of(int64_t token) const {
    return std::upper_bound(start_.begin(), start_.end(), token) - start_.begin() - 1;
  }

 private:
  std::vector<int64_t> start_;
};

// Sums over the queries of one head.
struct HeadSums {
  double entropy = 0;    // of -sum_j p log p (nats)
  double collapsed = 0;  // queries whose best key holds more than the sink threshold
  double keys_90 = 0, keys_90_sq = 0, keys_95 = 0, keys_95_sq = 0;  // key counts and their squares
  std::vector<double> key_mass;        // [N_k]: sum over queries of p
  std::vector<double> pooled;          // [query groups x key groups]: sum of p over the cell
  std::vector<double> frame_distance;  // [F], self-attention only
  std::vector<double> ring;            // [max(H, W)], self-attention only
};

// The head's statistics (means over queries, fractions of N_k, sinks, pooled means) from its sums.
HeadStats finish_head_stats(const HeadSums& sums, int64_t n_q, int64_t n_k, int64_t top_sinks,
                            const TokenGroups& query_groups, const TokenGroups& key_groups);

}  // namespace vdit
