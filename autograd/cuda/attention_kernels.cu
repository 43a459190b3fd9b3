// Fused streaming attention on tensor cores (FlashAttention 2's schedule), forward and backward;
// the math is autograd/attention.cpp's, the precision and layout contract attention_kernels.cuh's.
//
// Scores are kept in log2 units: with c = scale / temperature[h], x_ij = q_i . k_j (fp32 from the
// MMA), the kernels use x_ij * c * log2(e) + bias_j, where bias_j = -inf for a masked key or one
// past the end, so softmax needs only exp2. lse is stored in natural log (lse2 = lse log2 e).
//
// Forward: one block per (query block of BM, head, batch); each warp owns BM / WARPS query rows
// and streams over key tiles of BN: S = Q K^T, online softmax, O += P V. K and V have one buffer
// each; the copy of V_j overlaps S = Q K_j^T and the copy of K_{j+1} overlaps O += P V_j.
//
// Backward (deterministic: every output element has one writer, every sum a fixed order):
//   prepare:   dO -> bf16, D_i = dO_i . o_i, lse2 (+inf where lse = -inf, so p = 0 there), padded
//   key block: per key block, loop over query tiles: S^T, P^T, dV += P^T dO, dP^T, dS^T, dK += dS^T Q
//   query blk: per query block, loop over key tiles: S, P, dP, dS, dQ += dS K, sum_j dS_ij x_ij
//   temperature: per head, sum of those per-query partials over batch and queries in a fixed order
// S and dP are recomputed in both the key- and query-block kernels (7 matmuls instead of
// FlashAttention 2's 5) because accumulating dQ across key blocks would need float atomics.
//
// A pass that needs the probabilities themselves (the attention statistics of diagnostics/)
// reuses the same pieces with a forward's lse: load_tile_async, warp_scores for S, then
// p = exp2(x c log2 e + bias - lse2) at fragment_row / fragment_col, as the query-block kernel does.
#include "autograd/cuda/attention_kernels.cuh"
#include "autograd/cuda/attention_mma.cuh"

#include <climits>
#include <cmath>
#include <sstream>

namespace vdit::cuda {
namespace attn {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Per-query statistics of the backward are padded to a multiple of this many queries, so the
// query tiles of both backward kernels copy them without bounds checks.
constexpr int kQueryPad = 64;

struct Params {
  const bf16 *q, *k, *v;
  const float* temperature;
  const void* mask;
  KeyMaskType mask_type;
  float scale;
  int batch, q_len, k_len, heads;
};

// Element offset of token i of a [B, len, H, HD] tensor, batch b, head h.
template <int HD>
__device__ __forceinline__ int64_t token_offset(const Params& p, int b, int len, int64_t i, int h) {
  return ((static_cast<int64_t>(b) * len + i) * p.heads + h) * HD;
}

__device__ __forceinline__ float logit_factor(const Params& p, int h) {
  return p.temperature ? p.scale / p.temperature[h] : p.scale;
}

// 0 for a key that takes part, -inf for a masked key or one past the end.
__device__ __forceinline__ float key_bias(const Params& p, int b, int key) {
  if (key >= p.k_len) return -INFINITY;
  const int64_t i = static_cast<int64_t>(b) * p.k_len + key;
  switch (p.mask_type) {
    case KeyMaskType::f32: return static_cast<const float*>(p.mask)[i] == 0.0f ? -INFINITY : 0.0f;
    case KeyMaskType::u8: return static_cast<const uint8_t*>(p.mask)[i] == 0 ? -INFINITY : 0.0f;
    default: return 0.0f;
  }
}

// ---------------------------------------------------------------------------------- forward

template <int HD, int BM, int BN, int WARPS>
struct ForwardTiles {
  static constexpr int kThreads = WARPS * 32, kRowsPerWarp = BM / WARPS;
  static constexpr int MT = kRowsPerWarp / 16, NT = BN / 8;
  static constexpr size_t kSmemBytes = (BM + 2 * BN) * kStride<HD> * sizeof(bf16) + BN * sizeof(float);
  static_assert(kRowsPerWarp % 16 == 0 && BN % 16 == 0 && BN <= kThreads, "tile shape");
};

// The online softmax of one score tile (FlashAttention's rescaling): s holds raw dot products on
// entry and exp2(s - running max) on exit; row_max/row_sum/o are this thread's running state.
// row_sum stays a per-thread partial (the quad's lanes share the max, so partials rescale alike).
template <int MT, int NT, int HD>
__device__ __forceinline__ void softmax_update(float (&s)[MT][NT][4], float (&o)[MT][HD / 8][4],
                                               float (&row_max)[MT][2], float (&row_sum)[MT][2],
                                               const float* bias, float scale_log2, int t) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        const float2 bb = *reinterpret_cast<const float2*>(bias + 8 * n + 2 * t);
        s[m][n][2 * half] = s[m][n][2 * half] * scale_log2 + bb.x;
        s[m][n][2 * half + 1] = s[m][n][2 * half + 1] * scale_log2 + bb.y;
        tile_max = fmaxf(tile_max, fmaxf(s[m][n][2 * half], s[m][n][2 * half + 1]));
      }
      const float new_max = fmaxf(row_max[m][half], quad_max(tile_max));
      // Every key so far masked: subtract 0 instead of -inf (which would give NaN), p stays 0.
      const float base = new_max == -INFINITY ? 0.0f : new_max;
      const float correction = exp2_approx(row_max[m][half] - base);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          s[m][n][e] = exp2_approx(s[m][n][e] - base);
          sum += s[m][n][e];
        }
      row_sum[m][half] = row_sum[m][half] * correction + sum;
      row_max[m][half] = new_max;
      // Once a row's maximum has settled (most tiles of a long sequence) the correction is
      // exactly 1 and the HD / 4 multiplies of the rescale can be skipped.
      if (correction != 1.0f)
#pragma unroll
        for (int d = 0; d < HD / 8; ++d) {
          o[m][d][2 * half] *= correction;
          o[m][d][2 * half + 1] *= correction;
        }
    }
}

template <int HD, int BM, int BN, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    forward_kernel(const Params p, bf16* __restrict__ out, float* __restrict__ lse) {
  using T = ForwardTiles<HD, BM, BN, WARPS>;
  constexpr int MT = T::MT, NT = T::NT, S = kStride<HD>, kThreads = T::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sk = sq + BM * S;
  bf16* sv = sk + BN * S;
  float* sbias = reinterpret_cast<float*>(sv + BN * S);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
  const int q0 = blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z;
  const int64_t ld = static_cast<int64_t>(p.heads) * HD;
  const bf16* kg = p.k + token_offset<HD>(p, b, p.k_len, 0, h);
  const bf16* vg = p.v + token_offset<HD>(p, b, p.k_len, 0, h);
  const float scale_log2 = logit_factor(p, h) * kLog2e;
  const int key_tiles = (p.k_len + BN - 1) / BN;

  load_tile_async<BM, HD, kThreads>(sq, p.q + token_offset<HD>(p, b, p.q_len, q0, h), ld, p.q_len - q0, tid);
  load_tile_async<BN, HD, kThreads>(sk, kg, ld, p.k_len, tid);
  cp_async_commit();
  if (tid < BN) sbias[tid] = key_bias(p, b, tid);

  float o[MT][HD / 8][4];
  zero(o);
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m) row_max[m][0] = row_max[m][1] = -INFINITY, row_sum[m][0] = row_sum[m][1] = 0.0f;
  bf16* sq_warp = sq + warp * T::kRowsPerWarp * S;

  for (int j = 0; j < key_tiles; ++j) {
    const int k0 = j * BN;
    const bool more = j + 1 < key_tiles;
    cp_async_wait_all();
    __syncthreads();  // K_j and its bias landed; every warp is done with V_{j-1}
    load_tile_async<BN, HD, kThreads>(sv, vg + k0 * ld, ld, p.k_len - k0, tid);
    cp_async_commit();
    const float next_bias = more && tid < BN ? key_bias(p, b, k0 + BN + tid) : 0.0f;

    float s[MT][NT][4];
    warp_scores<MT, NT, HD>(s, sq_warp, sk, lane);
    softmax_update<MT, NT, HD>(s, o, row_max, row_sum, sbias, scale_log2, t);

    cp_async_wait_all();
    __syncthreads();  // V_j landed; every warp is done with K_j and the bias
    if (more) {
      load_tile_async<BN, HD, kThreads>(sk, kg + (k0 + BN) * ld, ld, p.k_len - k0 - BN, tid);
      cp_async_commit();
      if (tid < BN) sbias[tid] = next_bias;
    }
    uint32_t pa[MT][NT / 2][4];
    pack_a_fragments(pa, s);
    warp_pv<MT, NT / 2, HD>(o, pa, sv, lane);
  }

  // Normalise, stage the rows in this warp's own (no longer read) Q rows, store 16 bytes a lane.
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float l = quad_sum(row_sum[m][half]);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // all keys masked: output 0
      const int r = m * 16 + g + 8 * half;
#pragma unroll
      for (int d = 0; d < HD / 8; ++d)
        *reinterpret_cast<uint32_t*>(sq_warp + r * S + 8 * d + 2 * t) =
            pack_bf16x2(o[m][d][2 * half] * inv, o[m][d][2 * half + 1] * inv);
      const int row = q0 + warp * T::kRowsPerWarp + r;
      if (t == 0 && row < p.q_len)
        lse[(static_cast<int64_t>(b) * p.heads + h) * p.q_len + row] =
            l > 0.0f ? (row_max[m][half] + log2f(l)) * kLn2 : -INFINITY;
    }
  __syncwarp();
  for (int i = lane; i < T::kRowsPerWarp * HD / 8; i += 32) {
    const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
    const int row = q0 + warp * T::kRowsPerWarp + r;
    if (row < p.q_len)
      *reinterpret_cast<uint4*>(out + token_offset<HD>(p, b, p.q_len, row, h) + c) =
          *reinterpret_cast<const uint4*>(sq_warp + r * S + c);
  }
}

// --------------------------------------------------------------------------------- backward

// Where the backward's scratch lives inside the caller's workspace.
struct Workspace {
  bf16* dout;         // [B, Nq, H, hd]
  float* lse2;        // [B, H, q_pad]: lse * log2 e, +inf for fully masked or padding queries
  float* delta;       // [B, H, q_pad]: D_i = dO_i . o_i, 0 for padding
  float* temperature; // [B, H, Nq]: sum_j dS_ij x_ij
  int q_pad;
};

// One warp per (batch, query, head) row, padding rows included; warps in memory order of dout.
template <int HD>
__global__ void backward_prepare_kernel(const Params p, const bf16* __restrict__ out, const float* __restrict__ lse,
                                        const float* __restrict__ dout, Workspace w) {
  const int lane = threadIdx.x % 32;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (row >= static_cast<int64_t>(p.batch) * w.q_pad * p.heads) return;
  const int h = row % p.heads, i = (row / p.heads) % w.q_pad, b = row / (static_cast<int64_t>(p.heads) * w.q_pad);
  const int64_t stat = (static_cast<int64_t>(b) * p.heads + h) * w.q_pad + i;
  if (i >= p.q_len) {
    if (lane == 0) w.lse2[stat] = INFINITY, w.delta[stat] = 0.0f;
    return;
  }
  constexpr int kPairs = HD / 64;  // 2-element pairs per lane
  const int64_t base = token_offset<HD>(p, b, p.q_len, i, h);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kPairs; ++k) {
    const int64_t at = base + 2 * (lane + 32 * k);
    const float2 d = *reinterpret_cast<const float2*>(dout + at);
    const __nv_bfloat162 d16 = __floats2bfloat162_rn(d.x, d.y);
    const float2 o = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(out + at));
    *reinterpret_cast<__nv_bfloat162*>(w.dout + at) = d16;
    // D from the bf16 dO the matmuls use, so that sum_j p_ij (dp_ij - D_i) = 0 holds for it.
    const float2 df = __bfloat1622float2(d16);
    sum += df.x * o.x + df.y * o.y;
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) {
    w.delta[stat] = sum;
    const float l = lse[(static_cast<int64_t>(b) * p.heads + h) * p.q_len + i];
    w.lse2[stat] = l == -INFINITY ? INFINITY : l * kLog2e;
  }
}

// Copies kRows per-query statistics (lse2 and D) starting at query q0 into shared memory.
template <int kRows, int kThreads>
__device__ __forceinline__ void load_stats_async(float* slse2, float* sdelta, const Workspace& w,
                                                 int64_t stat0, int tid) {
  static_assert(kRows <= kThreads, "one statistic per thread");
  if (tid < kRows) {
    cp_async_4(slse2 + tid, w.lse2 + stat0 + tid);
    cp_async_4(sdelta + tid, w.delta + stat0 + tid);
  }
}

// Adds factor * acc (this thread's accumulator fragments of 16 rows starting at row0) into a
// [B, len, H, HD] fp32 tensor; rows past len are dropped.
template <int HD>
__device__ __forceinline__ void add_rows(float* dst, const float (&acc)[1][HD / 8][4], float factor,
                                         const Params& p, int b, int len, int row0, int h, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + g + 8 * half;
    if (row >= len) continue;
    float* r = dst + token_offset<HD>(p, b, len, row, h) + 2 * t;
#pragma unroll
    for (int d = 0; d < HD / 8; ++d) {
      float2* at = reinterpret_cast<float2*>(r + 8 * d);
      float2 v = *at;
      v.x += factor * acc[0][d][2 * half];
      v.y += factor * acc[0][d][2 * half + 1];
      *at = v;
    }
  }
}

template <int HD, int BN, int BM, int WARPS>
struct KeyBlockTiles {
  static constexpr int kThreads = WARPS * 32, NT = BM / 8;
  static constexpr size_t kSmemBytes =
      (2 * BN + 4 * BM) * kStride<HD> * sizeof(bf16) + (4 * BM + BN) * sizeof(float);
  static_assert(BN == 16 * WARPS && BM % 16 == 0 && kQueryPad % BM == 0 && BN <= kThreads, "tile shape");
};

// dK and dV of one block of BN keys (16 per warp), streaming over query tiles of BM.
template <int HD, int BN, int BM, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    backward_key_block_kernel(const Params p, const Workspace w, float* __restrict__ dk, float* __restrict__ dv) {
  using T = KeyBlockTiles<HD, BN, BM, WARPS>;
  constexpr int NT = T::NT, S = kStride<HD>, kThreads = T::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sk = reinterpret_cast<bf16*>(smem);
  bf16* sv = sk + BN * S;
  bf16* sq = sv + BN * S;        // [2][BM][S]
  bf16* sdo = sq + 2 * BM * S;   // [2][BM][S]
  float* slse2 = reinterpret_cast<float*>(sdo + 2 * BM * S);  // [2][BM]
  float* sdelta = slse2 + 2 * BM;                            // [2][BM]
  float* sbias = sdelta + 2 * BM;                            // [BN]

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int k0 = blockIdx.x * BN, h = blockIdx.y, b = blockIdx.z;
  const int64_t ld = static_cast<int64_t>(p.heads) * HD;
  const bf16* qg = p.q + token_offset<HD>(p, b, p.q_len, 0, h);
  const bf16* dog = w.dout + token_offset<HD>(p, b, p.q_len, 0, h);
  const int64_t stat0 = (static_cast<int64_t>(b) * p.heads + h) * w.q_pad;
  const float c = logit_factor(p, h), scale_log2 = c * kLog2e;
  const int query_tiles = (p.q_len + BM - 1) / BM;

  load_tile_async<BN, HD, kThreads>(sk, p.k + token_offset<HD>(p, b, p.k_len, k0, h), ld, p.k_len - k0, tid);
  load_tile_async<BN, HD, kThreads>(sv, p.v + token_offset<HD>(p, b, p.k_len, k0, h), ld, p.k_len - k0, tid);
  load_tile_async<BM, HD, kThreads>(sq, qg, ld, p.q_len, tid);
  load_tile_async<BM, HD, kThreads>(sdo, dog, ld, p.q_len, tid);
  load_stats_async<BM, kThreads>(slse2, sdelta, w, stat0, tid);
  cp_async_commit();
  if (tid < BN) sbias[tid] = key_bias(p, b, k0 + tid);

  float dk_acc[1][HD / 8][4], dv_acc[1][HD / 8][4];
  zero(dk_acc);
  zero(dv_acc);
  const bf16* sk_warp = sk + warp * 16 * S;
  const bf16* sv_warp = sv + warp * 16 * S;

  for (int i = 0; i < query_tiles; ++i) {
    cp_async_wait_all();
    __syncthreads();  // tile i landed; every warp is done with tile i - 1 (the other buffer)
    if (i + 1 < query_tiles) {
      const int nb = (i + 1) % 2, qn = (i + 1) * BM;
      load_tile_async<BM, HD, kThreads>(sq + nb * BM * S, qg + qn * ld, ld, p.q_len - qn, tid);
      load_tile_async<BM, HD, kThreads>(sdo + nb * BM * S, dog + qn * ld, ld, p.q_len - qn, tid);
      load_stats_async<BM, kThreads>(slse2 + nb * BM, sdelta + nb * BM, w, stat0 + qn, tid);
      cp_async_commit();
    }
    const int buf = i % 2;
    const bf16* sq_tile = sq + buf * BM * S;
    const bf16* sdo_tile = sdo + buf * BM * S;
    const float* lse2 = slse2 + buf * BM;
    const float* delta = sdelta + buf * BM;
    const float bias[2] = {sbias[warp * 16 + fragment_row(0, 0, lane)], sbias[warp * 16 + fragment_row(0, 2, lane)]};

    // P^T = exp2(S^T - lse2): rows are this warp's keys, columns the tile's queries.
    float pt[1][NT][4];
    warp_scores<1, NT, HD>(pt, sk_warp, sq_tile, lane);
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        pt[0][n][e] = exp2_approx(pt[0][n][e] * scale_log2 + bias[e / 2] - lse2[fragment_col(n, e, lane)]);
    uint32_t a[1][NT / 2][4];
    pack_a_fragments(a, pt);
    warp_pv<1, NT / 2, HD>(dv_acc, a, sdo_tile, lane);

    // dS^T = P^T (dP^T - D), dP^T = V dO^T.
    float dst[1][NT][4];
    warp_scores<1, NT, HD>(dst, sv_warp, sdo_tile, lane);
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) dst[0][n][e] = pt[0][n][e] * (dst[0][n][e] - delta[fragment_col(n, e, lane)]);
    pack_a_fragments(a, dst);
    warp_pv<1, NT / 2, HD>(dk_acc, a, sq_tile, lane);
  }
  if (dk) add_rows<HD>(dk, dk_acc, c, p, b, p.k_len, k0 + warp * 16, h, lane);
  if (dv) add_rows<HD>(dv, dv_acc, 1.0f, p, b, p.k_len, k0 + warp * 16, h, lane);
}

template <int HD, int BM, int BN, int WARPS>
struct QueryBlockTiles {
  static constexpr int kThreads = WARPS * 32, NT = BN / 8;
  static constexpr size_t kSmemBytes =
      (2 * BM + 4 * BN) * kStride<HD> * sizeof(bf16) + (2 * BM + 2 * BN) * sizeof(float);
  static_assert(BM == 16 * WARPS && BN % 16 == 0 && kQueryPad % BM == 0 && BN <= kThreads, "tile shape");
};

// dQ of one block of BM queries (16 per warp), and each query's sum_j dS_ij x_ij for the
// temperature, streaming over key tiles of BN (double-buffered).
template <int HD, int BM, int BN, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    backward_query_block_kernel(const Params p, const Workspace w, float* __restrict__ dq, bool want_temperature) {
  using T = QueryBlockTiles<HD, BM, BN, WARPS>;
  constexpr int NT = T::NT, S = kStride<HD>, kThreads = T::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sdo = sq + BM * S;
  bf16* sk = sdo + BM * S;      // [2][BN][S]
  bf16* sv = sk + 2 * BN * S;   // [2][BN][S]
  float* slse2 = reinterpret_cast<float*>(sv + 2 * BN * S);  // [BM]
  float* sdelta = slse2 + BM;                                // [BM]
  float* sbias = sdelta + BM;                                // [2][BN]

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
  const int q0 = blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z;
  const int64_t ld = static_cast<int64_t>(p.heads) * HD;
  const bf16* kg = p.k + token_offset<HD>(p, b, p.k_len, 0, h);
  const bf16* vg = p.v + token_offset<HD>(p, b, p.k_len, 0, h);
  const float c = logit_factor(p, h), scale_log2 = c * kLog2e;
  const int key_tiles = (p.k_len + BN - 1) / BN;

  load_tile_async<BM, HD, kThreads>(sq, p.q + token_offset<HD>(p, b, p.q_len, q0, h), ld, p.q_len - q0, tid);
  load_tile_async<BM, HD, kThreads>(sdo, w.dout + token_offset<HD>(p, b, p.q_len, q0, h), ld, p.q_len - q0, tid);
  load_stats_async<BM, kThreads>(slse2, sdelta, w, (static_cast<int64_t>(b) * p.heads + h) * w.q_pad + q0, tid);
  load_tile_async<BN, HD, kThreads>(sk, kg, ld, p.k_len, tid);
  load_tile_async<BN, HD, kThreads>(sv, vg, ld, p.k_len, tid);
  cp_async_commit();
  if (tid < BN) sbias[tid] = key_bias(p, b, tid);

  float dq_acc[1][HD / 8][4];
  zero(dq_acc);
  float temperature_sum[2] = {0.0f, 0.0f};
  const bf16* sq_warp = sq + warp * 16 * S;
  const bf16* sdo_warp = sdo + warp * 16 * S;

  for (int j = 0; j < key_tiles; ++j) {
    const bool more = j + 1 < key_tiles;
    cp_async_wait_all();
    __syncthreads();  // tile j landed; every warp is done with tile j - 1 (the other buffer)
    float next_bias = 0.0f;
    if (more) {
      const int nb = (j + 1) % 2, kn = (j + 1) * BN;
      load_tile_async<BN, HD, kThreads>(sk + nb * BN * S, kg + kn * ld, ld, p.k_len - kn, tid);
      load_tile_async<BN, HD, kThreads>(sv + nb * BN * S, vg + kn * ld, ld, p.k_len - kn, tid);
      cp_async_commit();
      if (tid < BN) next_bias = key_bias(p, b, kn + tid);
    }
    const int buf = j % 2;
    const bf16* sk_tile = sk + buf * BN * S;
    const float* bias = sbias + buf * BN;
    const int r0 = warp * 16 + g;
    const float lse2[2] = {slse2[r0], slse2[r0 + 8]};
    const float delta[2] = {sdelta[r0], sdelta[r0 + 8]};

    float x[1][NT][4], ds[1][NT][4];
    warp_scores<1, NT, HD>(x, sq_warp, sk_tile, lane);
    warp_scores<1, NT, HD>(ds, sdo_warp, sv + buf * BN * S, lane);
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pr = exp2_approx(x[0][n][e] * scale_log2 + bias[fragment_col(n, e, lane)] - lse2[e / 2]);
        ds[0][n][e] = pr * (ds[0][n][e] - delta[e / 2]);
        // Masked keys have p = ds = 0 and a finite x, so they add nothing (s itself is -inf there).
        temperature_sum[e / 2] += ds[0][n][e] * x[0][n][e];
      }
    if (more && tid < BN) sbias[((j + 1) % 2) * BN + tid] = next_bias;
    uint32_t a[1][NT / 2][4];
    pack_a_fragments(a, ds);
    warp_pv<1, NT / 2, HD>(dq_acc, a, sk_tile, lane);
  }
  if (dq) add_rows<HD>(dq, dq_acc, c, p, b, p.q_len, q0 + warp * 16, h, lane);
  if (want_temperature)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float sum = quad_sum(temperature_sum[half]);
      const int row = q0 + warp * 16 + g + 8 * half;
      if (t == 0 && row < p.q_len) w.temperature[(static_cast<int64_t>(b) * p.heads + h) * p.q_len + row] = sum;
    }
}

// dtemperature[h] -= (c_h / temperature[h]) sum_{b,i} partial[b, h, i], summed in a fixed order.
__global__ void temperature_grad_kernel(const Params p, const Workspace w, float* dtemperature) {
  constexpr int kThreads = 256;
  __shared__ double partial[kThreads];
  const int h = blockIdx.x, tid = threadIdx.x;
  double sum = 0.0;
  for (int64_t i = tid; i < static_cast<int64_t>(p.batch) * p.q_len; i += kThreads) {
    const int64_t b = i / p.q_len, q = i % p.q_len;
    sum += w.temperature[(b * p.heads + h) * p.q_len + q];
  }
  partial[tid] = sum;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (tid < width) partial[tid] += partial[tid + width];
    __syncthreads();
  }
  if (tid == 0) {
    const double tau = p.temperature[h];
    dtemperature[h] -= static_cast<float>(partial[0] * (p.scale / tau) / tau);
  }
}

// ------------------------------------------------------------------------------ host side

// Tile shapes per head dimension (FlashAttention 2's for sm80/sm90 where the registers allow).
template <int HD>
struct Config {
  static constexpr int kWarps = 4;
  static constexpr int kForwardM = 128, kForwardN = HD == 64 ? 64 : 32;
  static constexpr int kKeyBlockN = 64, kKeyBlockM = HD == 64 ? 64 : 32;
  static constexpr int kQueryBlockM = 64, kQueryBlockN = 64;
};

template <typename Kernel>
std::string launch_error(Kernel kernel, size_t smem_bytes, const char* what) {
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem_bytes));
  if (e != cudaSuccess)
    return std::string("attention (CUDA): cannot give the ") + what + " kernel " +
           std::to_string(smem_bytes) + " bytes of shared memory: " + cudaGetErrorString(e);
  return {};
}

std::string last_error(const char* what) {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? std::string()
                          : std::string("attention (CUDA): ") + what + " launch failed: " + cudaGetErrorString(e);
}

Params make_params(const AttentionInputs& in) {
  const AttentionShape& s = in.shape;
  const float scale = in.scale > 0.0f ? in.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  return {in.q, in.k, in.v, in.temperature, in.key_mask, in.key_mask ? in.mask_type : KeyMaskType::none,
          scale, static_cast<int>(s.batch), static_cast<int>(s.q_len), static_cast<int>(s.k_len),
          static_cast<int>(s.heads)};
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

std::string check_inputs(const AttentionInputs& in) {
  const AttentionShape& s = in.shape;
  std::ostringstream e;
  e << "attention (CUDA): ";
  if (s.head_dim != 64 && s.head_dim != 128)
    e << "head_dim " << s.head_dim << " is not supported (64 or 128)";
  else if (s.batch < 1 || s.q_len < 1 || s.k_len < 1 || s.heads < 1)
    e << "shape [B " << s.batch << ", Nq " << s.q_len << ", Nk " << s.k_len << ", H " << s.heads << "] has an empty axis";
  else if (s.batch > 65535 || s.heads > 65535 || s.q_len > INT_MAX - 256 || s.k_len > INT_MAX - 256)
    e << "shape [B " << s.batch << ", Nq " << s.q_len << ", Nk " << s.k_len << ", H " << s.heads << "] exceeds the grid limits";
  else if (!in.q || !in.k || !in.v)
    e << "q, k and v must all be given";
  else if (!aligned16(in.q) || !aligned16(in.k) || !aligned16(in.v))
    e << "q, k and v must be 16-byte aligned";
  else if ((in.key_mask != nullptr) != (in.mask_type != KeyMaskType::none))
    e << "a key mask needs its type and a mask type needs its mask";
  else
    return {};
  return e.str();
}

template <int HD>
std::string forward(const AttentionInputs& in, bf16* out, float* lse, cudaStream_t stream) {
  using C = Config<HD>;
  using T = ForwardTiles<HD, C::kForwardM, C::kForwardN, C::kWarps>;
  const Params p = make_params(in);
  auto kernel = forward_kernel<HD, C::kForwardM, C::kForwardN, C::kWarps>;
  if (std::string e = launch_error(kernel, T::kSmemBytes, "forward"); !e.empty()) return e;
  const dim3 grid((p.q_len + C::kForwardM - 1) / C::kForwardM, p.heads, p.batch);
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(p, out, lse);
  return last_error("forward");
}

int64_t padded_queries(const AttentionShape& s) { return (s.q_len + kQueryPad - 1) / kQueryPad * kQueryPad; }
size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

Workspace carve(const AttentionShape& s, void* workspace) {
  auto* at = static_cast<unsigned char*>(workspace);
  const int64_t q_pad = padded_queries(s), rows = s.batch * s.heads;
  Workspace w{};
  w.q_pad = static_cast<int>(q_pad);
  w.dout = reinterpret_cast<bf16*>(at);
  at += round_up(s.batch * s.q_len * s.heads * s.head_dim * sizeof(bf16));
  w.lse2 = reinterpret_cast<float*>(at);
  at += round_up(rows * q_pad * sizeof(float));
  w.delta = reinterpret_cast<float*>(at);
  at += round_up(rows * q_pad * sizeof(float));
  w.temperature = reinterpret_cast<float*>(at);
  return w;
}

template <int HD>
std::string backward(const AttentionInputs& in, const bf16* out, const float* lse, const float* dout,
                     const AttentionGrads& grads, const Workspace& w, cudaStream_t stream) {
  using C = Config<HD>;
  const Params p = make_params(in);
  const int64_t prepare_rows = static_cast<int64_t>(p.batch) * w.q_pad * p.heads;
  backward_prepare_kernel<HD><<<(prepare_rows * 32 + 255) / 256, 256, 0, stream>>>(p, out, lse, dout, w);
  if (std::string e = last_error("backward prepare"); !e.empty()) return e;

  if (grads.dk || grads.dv) {
    using T = KeyBlockTiles<HD, C::kKeyBlockN, C::kKeyBlockM, C::kWarps>;
    auto kernel = backward_key_block_kernel<HD, C::kKeyBlockN, C::kKeyBlockM, C::kWarps>;
    if (std::string e = launch_error(kernel, T::kSmemBytes, "backward dK/dV"); !e.empty()) return e;
    const dim3 grid((p.k_len + C::kKeyBlockN - 1) / C::kKeyBlockN, p.heads, p.batch);
    kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(p, w, grads.dk, grads.dv);
    if (std::string e = last_error("backward dK/dV"); !e.empty()) return e;
  }
  if (grads.dq || grads.dtemperature) {
    using T = QueryBlockTiles<HD, C::kQueryBlockM, C::kQueryBlockN, C::kWarps>;
    auto kernel = backward_query_block_kernel<HD, C::kQueryBlockM, C::kQueryBlockN, C::kWarps>;
    if (std::string e = launch_error(kernel, T::kSmemBytes, "backward dQ"); !e.empty()) return e;
    const dim3 grid((p.q_len + C::kQueryBlockM - 1) / C::kQueryBlockM, p.heads, p.batch);
    kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(p, w, grads.dq, grads.dtemperature != nullptr);
    if (std::string e = last_error("backward dQ"); !e.empty()) return e;
  }
  if (grads.dtemperature) {
    temperature_grad_kernel<<<p.heads, 256, 0, stream>>>(p, w, grads.dtemperature);
    if (std::string e = last_error("backward temperature"); !e.empty()) return e;
  }
  return {};
}

}  // namespace
}  // namespace attn

std::string attention_forward(const AttentionInputs& in, __nv_bfloat16* out, float* lse, cudaStream_t stream) {
  if (std::string e = attn::check_inputs(in); !e.empty()) return e;
  if (!out || !lse || !attn::aligned16(out)) return "attention (CUDA): out (16-byte aligned) and lse must be given";
  return in.shape.head_dim == 64 ? attn::forward<64>(in, out, lse, stream) : attn::forward<128>(in, out, lse, stream);
}

size_t attention_backward_workspace_bytes(const AttentionShape& s) {
  const size_t rows = s.batch * s.heads;
  return attn::round_up(s.batch * s.q_len * s.heads * s.head_dim * sizeof(__nv_bfloat16)) +
         2 * attn::round_up(rows * attn::padded_queries(s) * sizeof(float)) +
         attn::round_up(rows * s.q_len * sizeof(float));
}

std::string attention_backward(const AttentionInputs& in, const __nv_bfloat16* out, const float* lse,
                               const float* dout, const AttentionGrads& grads, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream) {
  if (std::string e = attn::check_inputs(in); !e.empty()) return e;
  if (!out || !lse || !dout || !attn::aligned16(out) || !attn::aligned16(dout))
    return "attention (CUDA): the backward needs out, lse and dout (out and dout 16-byte aligned)";
  if (grads.dtemperature && !in.temperature)
    return "attention (CUDA): a temperature gradient was asked for but no temperature was given";
  for (const float* g : {grads.dq, grads.dk, grads.dv})  // updated two floats at a time
    if (reinterpret_cast<uintptr_t>(g) % 8 != 0) return "attention (CUDA): dq, dk and dv must be 8-byte aligned";
  const size_t need = attention_backward_workspace_bytes(in.shape);
  if (!workspace || workspace_bytes < need || reinterpret_cast<uintptr_t>(workspace) % 256 != 0)
    return "attention (CUDA): the backward needs a 256-byte aligned workspace of " + std::to_string(need) +
           " bytes; got " + std::to_string(workspace ? workspace_bytes : 0);
  const attn::Workspace w = attn::carve(in.shape, workspace);
  return in.shape.head_dim == 64 ? attn::backward<64>(in, out, lse, dout, grads, w, stream)
                                 : attn::backward<128>(in, out, lse, dout, grads, w, stream);
}

}  // namespace vdit::cuda
