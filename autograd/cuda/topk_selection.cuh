#pragma once
// Each query's top-k selection (sparse_attention_kernels.cuh states it and its bound) as the
// passes over the scores find it and the sparse output pass reads it: where the running count
// from the top of the query's coarse histogram of log2 p, then of the fine histogram inside the
// crossed coarse bin, reaches `keep`. The window is the one the attention statistics use too
// (attention_stats_kernels.cuh), so that their histograms yield the selection alongside their
// own order statistics when diagnose asks for both on the same q and k.
#include "autograd/cuda/score_pass.cuh"

namespace vdit::cuda::attn {

// The coarse window of log2 p: [log2 max p - kSelectSpan, log2 max p] in kCoarseBins bins.
constexpr float kSelectSpan = 40.0f;
__device__ __forceinline__ Window select_window(float top) { return {top - kSelectSpan, kCoarseBins / kSelectSpan}; }

// The lse pass's rows, and per query [H, Nq]: the crossed coarse bin (-1: every key kept), the
// count above the crossed bin (coarse, then fine), the crossed fine bin, and the last kept
// member of that fine bin (its log2 p and key; key -1: too many members to sort, the bin is
// filled in key order).
struct TopKShape {
  RowStats rows;
  int* coarse;
  uint32_t* count_above;
  int* fine;
  float* last_log2p;
  int* last_key;
  int q_len, keep;
  __device__ int64_t at(int h, int q) const { return rows.at(h, q); }

  // Records, for query i, where the running count from the top of its coarse (kFine false) or
  // fine histogram row `bins` (kWords words per bin, the count first) reaches keep.
  template <bool kFine, int kWords>
  __device__ void record(int64_t i, const uint32_t* bins) const {
    if (kFine && coarse[i] < 0) return;  // every key kept: no fine level
    const Crossing c =
        find_crossing<kFine ? kFineBins : kCoarseBins, kWords>(bins, true, 0, keep, kFine ? count_above[i] : 0, 0);
    // The fine histogram is always crossed: its members are the coarse bin's, which reach keep.
    (kFine ? fine : coarse)[i] = c.bin;
    count_above[i] = c.count_above;
  }
};

// A thread's two rows as every pass after the lse pass sees them: log-sum-exp, the coarse
// window, and the crossed bins of the `known` (0, 1 or 2) levels the passes before have found.
struct TopKRows {
  float lse[2];
  Window window[2];
  int coarse[2], fine[2];
  __device__ void load(const TopKShape& shape, const PassPlace& at, int known) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int q = at.query(half);
      shape.rows.window(at.h, q, lse[half], window[half], [](float top) { return select_window(top); });
      coarse[half] = known >= 1 && q < shape.q_len ? shape.coarse[shape.at(at.h, q)] : -1;
      fine[half] = known >= 2 && coarse[half] >= 0 ? shape.fine[shape.at(at.h, q)] : 0;
    }
  }
};

}  // namespace vdit::cuda::attn
