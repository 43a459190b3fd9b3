#pragma once
// Statistics of one attention's probability map (issue 5): entropy, sinks, sparsity, locality
// and a pooled picture of the map, computed while streaming over blocks of queries so that no
// [N_q, N_k] map is ever held, which is what makes them affordable at real Wan sizes.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

// The token grid of self-attention keys/queries (frame-major, w fastest), for locality.
struct TokenGrid {
  int64_t frames = 1, height = 1, width = 1;
  int64_t tokens() const { return frames * height * width; }
  std::string position(int64_t token) const;  // "(frame,row,column)", as reports label sink keys
};

struct AttentionStatsOptions {
  double sink_threshold = 0.5;  // a query "collapses" when its best key holds more than this
  int64_t max_pooled = 64;      // pooled map at most this many rows and columns
  int64_t query_block = 256;    // queries processed at once: memory is O(query_block * N_k)
  int64_t top_sinks = 5;        // sink keys reported per head
};

struct HeadStats {
  double entropy = 0;              // mean over queries of -sum p log p / log(N_k)
  double sink_mass = 0;            // largest mean mass one key receives (mean over queries)
  std::vector<int64_t> sink_keys;  // the top_sinks keys by mean mass, best first
  std::vector<double> sink_key_mass;
  double first_key_mass = 0;       // mean mass on key 0 (for cross-attention, text token 0)
  double top1_over_threshold = 0;  // fraction of queries whose best key > sink_threshold
  // Fraction of keys holding 90% (95%) of a query's mass: mean and std over queries.
  double keys_for_90 = 0, keys_for_90_std = 0;
  double keys_for_95 = 0, keys_for_95_std = 0;
  // Self-attention only (grid given): mass by frame distance |f_q - f_k| = 0..F-1 (sums to 1),
  // and within the query's own frame, mass by spatial ring max(|dh|, |dw|) = 0..max(H,W)-1
  // (as a share of all mass, so it sums to frame_distance_mass[0]).
  std::vector<double> frame_distance_mass;
  std::vector<double> ring_mass;
  // The attention map averaged into at most max_pooled x max_pooled cells (row-major), rows =
  // query groups, columns = key groups (contiguous token ranges, as equal as possible: group g
  // of G over n tokens is [g n / G, (g + 1) n / G) rounded down). A cell holds the mean
  // probability over its queries and keys.
  std::vector<double> pooled_map;
  int64_t pooled_rows = 0, pooled_cols = 0;
};

// Statistics of softmax(q k^T * scale / temperature[h]) for one sample: q [N_q, H, hd],
// k [N_k, H, hd] (after the norms and RoPE; bf16 is widened). temperature empty = 1. grid
// non-null for self-attention (N_q == N_k == grid->tokens()). Streams over query blocks, one
// head per thread; never holds an [N_q, N_k] map. Needs N_k >= 2 (entropy is normalised by
// log N_k). With q and k on a CUDA device the same statistics come from the GPU kernels of
// autograd/cuda/attention_stats_kernels.cuh (q and k as bf16; keys_for_90/95 within the error
// bound stated there, 0.38% of the count plus one key at 32,760 keys).
std::vector<HeadStats> attention_statistics(const Tensor& q, const Tensor& k, float scale,
                                            const std::vector<float>& temperature,
                                            const TokenGrid* grid,
                                            const AttentionStatsOptions& options);

// Pearson correlation of two pooled maps of equal size (prompt-independence of structure).
// NaN when either map is constant: it has no structure to correlate.
double pooled_map_correlation(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace vdit
