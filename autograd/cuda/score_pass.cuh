#pragma once
// One streamed pass over the attention scores of a single sample, for the passes that read the
// probabilities themselves rather than multiply them by V (the attention statistics and top-k
// sparse attention of diagnostics/): the fused kernels' tile loads and warp_scores
// (attention_mma.cuh), with what is done to each tile of scores left to a Visitor.
//
// One block of kPassThreads threads per (block of kPassRows queries, head); warp w owns queries
// 16 w .. 16 w + 15 of the block and streams over all keys in tiles of kPassKeys, K (and V when
// the visitor wants it) double-buffered. The visitor sees each tile as s2 = q.k * c * log2(e)
// (c = scale / temperature[h]) in the accumulator layout of attention_mma.cuh, -inf past the
// last key; rows past the last query see zero queries and must be ignored by the visitor.
//
// Also here: the per-query histograms of log-probabilities that the order statistics (keys
// holding 90% of the mass, the k-th largest probability) are found from, in two passes: a coarse
// histogram over a window of log2 p, then a fine one inside the coarse bin where the running
// count or mass from the top crosses the target. Counts and masses are integers (mass in units
// of 2^-31) added with shared-memory integer atomics, so the result is the same on every run.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "autograd/cuda/attention_mma.cuh"

namespace vdit::cuda::attn {

constexpr int kPassRows = 64, kPassKeys = 64, kPassThreads = 128, kPassTiles = kPassKeys / 8;
constexpr float kPassLog2e = 1.4426950408889634f;
constexpr float kMassUnit = 2147483648.0f;  // 2^31: p = 1 and a row's total fit a uint32
// The two histograms' bins: 64 x 56 levels, small enough that the statistics' passes run two
// blocks per SM (the fine pass holds 2 x 56 bins per row).
constexpr int kCoarseBins = 64, kFineBins = 56;

struct PassParams {
  const bf16* q;  // [Nq, H, HD]: query i is row i * q_stride
  const bf16* k;  // [Nk, H, HD]
  const bf16* v;  // [Nk, H, HD], for visitors with kValues
  const float* temperature;  // [H] or null
  float scale;
  int q_len, k_len, heads;
  int q_stride = 1;  // rows of q between two queries of the pass (q_len of them)
};

// Where a thread is: its lane and warp, the block's first query and the head.
struct PassPlace {
  int tid, lane, warp, q0, h;
  unsigned char* smem;  // the visitor's shared memory
  // Query of accumulator row half (0: fragment row g, 1: g + 8), and its row within the block.
  __device__ int local_row(int half) const { return warp * 16 + lane / 4 + 8 * half; }
  __device__ int query(int half) const { return q0 + local_row(half); }
};

using ScoreTile = float[1][kPassTiles][4];

template <int HD, bool kValues>
constexpr size_t pass_tile_bytes() {
  return (kPassRows + (kValues ? 4 : 2) * kPassKeys) * kStride<HD> * sizeof(bf16);
}

// Visitor: kValues; begin(place); tile(place, s2, k0, v_tile) with v_tile the V rows of the tile
// (null without kValues), called by every thread for every tile; finish(place) after the last
// tile, once every thread is done with it (the block synchronised). Tiles come in key order,
// unless the visitor sets kRotate: then block x starts at tile x (mod the tile count) and wraps
// around, so that the blocks running at one time add into different keys' totals in global
// memory (atomics on one L2 line serialise; every block would otherwise start at key 0).
template <class Visitor>
constexpr bool rotates() {
  if constexpr (requires { Visitor::kRotate; }) return Visitor::kRotate;
  return false;
}

template <int HD, class Visitor>
__global__ void __launch_bounds__(kPassThreads) score_pass_kernel(const PassParams p, Visitor visitor) {
  constexpr int S = kStride<HD>;
  constexpr bool kValues = Visitor::kValues;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sk = sq + kPassRows * S;  // [2][kPassKeys][S]
  bf16* sv = sk + 2 * kPassKeys * S;
  const int tid = threadIdx.x;
  const PassPlace place{tid, tid % 32, tid / 32, static_cast<int>(blockIdx.x) * kPassRows, static_cast<int>(blockIdx.y),
                        smem + pass_tile_bytes<HD, kValues>()};
  const int64_t ld = static_cast<int64_t>(p.heads) * HD;
  const bf16* kg = p.k + static_cast<int64_t>(place.h) * HD;
  const bf16* vg = kValues ? p.v + static_cast<int64_t>(place.h) * HD : nullptr;
  const float scale_log2 = (p.temperature ? p.scale / p.temperature[place.h] : p.scale) * kPassLog2e;
  const int tiles = (p.k_len + kPassKeys - 1) / kPassKeys;
  const int first = rotates<Visitor>() ? static_cast<int>(blockIdx.x) % tiles : 0;
  const int64_t k_first = static_cast<int64_t>(first) * kPassKeys;

  const int64_t q_ld = ld * p.q_stride;
  load_tile_async<kPassRows, HD, kPassThreads>(sq, p.q + place.q0 * q_ld + place.h * HD, q_ld, p.q_len - place.q0, tid);
  load_tile_async<kPassKeys, HD, kPassThreads>(sk, kg + k_first * ld, ld, p.k_len - static_cast<int>(k_first), tid);
  if constexpr (kValues) load_tile_async<kPassKeys, HD, kPassThreads>(sv, vg + k_first * ld, ld, p.k_len - static_cast<int>(k_first), tid);
  cp_async_commit();
  visitor.begin(place);

  for (int j = 0; j < tiles; ++j) {
    const int tile = first + j < tiles ? first + j : first + j - tiles, k0 = tile * kPassKeys, buf = j % 2;
    cp_async_wait_all();
    __syncthreads();  // tile j landed; every warp is done with tile j - 1 (the other buffer)
    if (j + 1 < tiles) {
      const int kn = tile + 1 < tiles ? k0 + kPassKeys : 0, nb = (j + 1) % 2;
      load_tile_async<kPassKeys, HD, kPassThreads>(sk + nb * kPassKeys * S, kg + kn * ld, ld, p.k_len - kn, tid);
      if constexpr (kValues)
        load_tile_async<kPassKeys, HD, kPassThreads>(sv + nb * kPassKeys * S, vg + kn * ld, ld, p.k_len - kn, tid);
      cp_async_commit();
    }
    float s[1][kPassTiles][4];
    warp_scores<1, kPassTiles, HD>(s, sq + place.warp * 16 * S, sk + buf * kPassKeys * S, place.lane);
#pragma unroll
    for (int n = 0; n < kPassTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        s[0][n][e] = k0 + fragment_col(n, e, place.lane) < p.k_len ? s[0][n][e] * scale_log2 : -INFINITY;
    visitor.tile(place, s, k0, kValues ? sv + buf * kPassKeys * S : nullptr);
  }
  __syncthreads();
  visitor.finish(place);
}

// fn(n, e, half) for every element of a thread's tile (accumulator layout; half = e / 2: row g
// or g + 8), unrolled.
template <class Fn>
__device__ __forceinline__ void for_each_element(Fn fn) {
#pragma unroll
  for (int n = 0; n < kPassTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) fn(n, e, e / 2);
}

// The sums of the tile's values over each of the thread's two rows, over the quad (every lane
// gets them): values past the last key must be 0.
__device__ __forceinline__ void row_sums(const ScoreTile& v, float (&sum)[2]) {
  sum[0] = sum[1] = 0.0f;
  for_each_element([&](int n, int e, int half) { sum[half] += v[0][n][e]; });
  sum[0] = quad_sum(sum[0]);
  sum[1] = quad_sum(sum[1]);
}

// The tile's sums over contiguous key segments (frames, key groups): for each segment
// segment_of(k0) .. segment_of(last key of the tile), [begin(seg), begin(seg + 1)) in keys, the
// quad's sums of each of the thread's two rows, handed to add(half, segment, sum) on the quad's
// first lane (one writer per row). A tile inside one segment (most, at real sizes) takes its
// row sums `whole`; two divisions per tile, none per key.
template <class SegmentOf, class SegmentBegin, class Add>
__device__ __forceinline__ void segment_sums(const ScoreTile& v, int k0, int last_key, int lane, const float (&whole)[2],
                                             SegmentOf segment_of, SegmentBegin segment_begin, Add add) {
  const int first = segment_of(k0), last = segment_of(min(k0 + kPassKeys - 1, last_key));
  if (first == last) {
    if (lane % 4 == 0) add(0, first, whole[0]), add(1, first, whole[1]);
    return;
  }
  for (int seg = first; seg <= last; ++seg) {
    const int lo = segment_begin(seg), hi = segment_begin(seg + 1);
    float sum[2] = {0.0f, 0.0f};
    for_each_element([&](int n, int e, int half) {
      const int key = k0 + fragment_col(n, e, lane);
      if (key >= lo && key < hi) sum[half] += v[0][n][e];
    });
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float total = quad_sum(sum[half]);
      if (lane % 4 == 0) add(half, seg, total);
    }
  }
}

// A window of log2 p cut into NB equal bins: lo and bins per unit of log2 p.
struct Window {
  float lo, per_unit;
  // The bin of a log-probability, -1 below the window; values at or past its top (the largest
  // probability, which defines the top) go to the last bin.
  template <int NB>
  __device__ __forceinline__ int bin(float log2p) const {
    if (!(log2p >= lo)) return -1;
    return min(static_cast<int>((log2p - lo) * per_unit), NB - 1);
  }
  // The bin of the fine histogram of NB bins inside bin b (clamped: the top bin holds the top).
  template <int NB>
  __device__ __forceinline__ int fine_bin(float log2p, int b) const {
    return min(max(static_cast<int>(((log2p - lo) * per_unit - b) * NB), 0), NB - 1);
  }
};

// Per query the log-sum-exp and the largest score, both in log2 units ([H, Nq] each), from
// LsePass below, and the coarse window a pass derives from them with `rule(log2 max p)`. Rows
// past the last query get log-sum-exp +inf (every p of theirs is 0) and an empty window.
struct RowStats {
  float* lse2;
  float* max2;
  int q_len;
  __device__ int64_t at(int h, int q) const { return static_cast<int64_t>(h) * q_len + q; }
  template <class Rule>
  __device__ void window(int h, int q, float& lse, Window& w, Rule rule) const {
    if (q >= q_len) {
      lse = INFINITY;
      w = {0.0f, 0.0f};
      return;
    }
    lse = lse2[at(h, q)];
    w = rule(max2[at(h, q)] - lse);
  }
};

// Cuts a workspace into 256-byte aligned parts, in order; with a null base it only counts.
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<unsigned char*>(base)) {}
  template <class T>
  T* take(size_t count) {
    T* part = base_ ? reinterpret_cast<T*>(base_ + bytes_) : nullptr;
    bytes_ += (count * sizeof(T) + 255) / 256 * 256;
    return part;
  }
  size_t bytes() const { return bytes_; }

 private:
  unsigned char* base_;
  size_t bytes_ = 0;
};

// Count and, with kMass, mass (units of 2^-31) per bin: per row [windows][NB][1 or 2] uint32 in
// shared memory. Rows are an odd number of words apart, so that the 8 rows one atomic of a warp
// touches fall in 8 different banks (near-uniform rows put most keys in the same few bins).
template <int W, int NB, bool kMass = true>
struct Histogram {
  static constexpr int kWords = kMass ? 2 : 1, kRowWords = W * NB * kWords + 1;
  static constexpr size_t kBytes = static_cast<size_t>(kPassRows) * kRowWords * sizeof(uint32_t);
  uint32_t* bins;
  __device__ void clear(int tid) const {
    for (int i = tid; i < kPassRows * kRowWords; i += kPassThreads) bins[i] = 0;
  }
  __device__ __forceinline__ void add(int row, int w, int b, float p) const {
    uint32_t* at = bins + row * kRowWords + (w * NB + b) * kWords;
    atomicAdd(at, 1u);
    if constexpr (kMass) atomicAdd(at + 1, __float2uint_rn(p * kMassUnit));
  }
  __device__ const uint32_t* row(int row, int w) const { return bins + row * kRowWords + w * NB * kWords; }
};

// Where a target is crossed walking the bins of one histogram from the top: the bin, and the
// count and mass of the bins above it (bin -1: never crossed).
struct Crossing {
  int bin;
  uint32_t count_above;
  uint64_t mass_above;
};

// Crossed by mass (the running mass reaches target_mass, in 2^-31 units) or by count (the
// running count reaches target_count), starting from what lies above the whole histogram; one
// row of a Histogram of kWords words per bin (count-only histograms cross by count).
template <int NB, int kWords = 2>
__device__ Crossing find_crossing(const uint32_t* bins, bool by_count, uint64_t target_mass, uint32_t target_count,
                                  uint32_t count_above, uint64_t mass_above) {
  for (int b = NB - 1; b >= 0; --b) {
    const uint32_t count = bins[kWords * b];
    const uint64_t mass = kWords == 2 ? bins[kWords * b + 1] : 0;
    if (by_count ? count_above + count >= target_count : mass_above + mass >= target_mass)
      return {b, count_above, mass_above};
    count_above += count;
    mass_above += mass;
  }
  return {-1, count_above, mass_above};
}

// The per-query log-sum-exp and largest score, both in log2 units ([H, Nq] each): the online
// softmax of the forward kernel without the output.
struct LsePass {
  static constexpr bool kValues = false;
  static constexpr size_t kSmemBytes = 0;
  float* lse2;
  float* max2;
  int q_len;
  float row_max[2], row_sum[2];

  __device__ void begin(const PassPlace&) {
    row_max[0] = row_max[1] = -INFINITY;
    row_sum[0] = row_sum[1] = 0.0f;
  }
  __device__ void tile(const PassPlace&, ScoreTile& s, int, const bf16*) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float m = -INFINITY;
#pragma unroll
      for (int n = 0; n < kPassTiles; ++n) m = fmaxf(m, fmaxf(s[0][n][2 * half], s[0][n][2 * half + 1]));
      const float new_max = fmaxf(row_max[half], quad_max(m));  // finite: a tile has a key
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kPassTiles; ++n) sum += exp2_approx(s[0][n][2 * half] - new_max) + exp2_approx(s[0][n][2 * half + 1] - new_max);
      row_sum[half] = row_sum[half] * exp2_approx(row_max[half] - new_max) + sum;
      row_max[half] = new_max;
    }
  }
  __device__ void finish(const PassPlace& at) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float l = quad_sum(row_sum[half]);
      const int q = at.query(half);
      if (at.lane % 4 == 0 && q < q_len) {
        lse2[static_cast<int64_t>(at.h) * q_len + q] = row_max[half] + log2f(l);
        max2[static_cast<int64_t>(at.h) * q_len + q] = row_max[half];
      }
    }
  }
};

}  // namespace vdit::cuda::attn

namespace vdit::cuda::attn {

// Runs one pass of `visitor` (whose shared memory is visitor_bytes) over every (query block,
// head); a one-line error when the device lacks the shared memory or the launch fails.
template <int HD, class Visitor>
std::string launch_score_pass(const PassParams& p, const Visitor& visitor, size_t visitor_bytes, cudaStream_t stream,
                              const char* what) {
  const size_t bytes = pass_tile_bytes<HD, Visitor::kValues>() + visitor_bytes;
  int device = 0, most = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (bytes > static_cast<size_t>(most))
    return std::string(what) + " needs " + std::to_string(bytes) + " bytes of shared memory per block; the device has " +
           std::to_string(most);
  auto kernel = score_pass_kernel<HD, Visitor>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e == cudaSuccess) {
    kernel<<<dim3((p.q_len + kPassRows - 1) / kPassRows, p.heads), kPassThreads, bytes, stream>>>(p, visitor);
    e = cudaGetLastError();
  }
  return e == cudaSuccess ? std::string() : std::string(what) + " launch failed: " + cudaGetErrorString(e);
}

}  // namespace vdit::cuda::attn
