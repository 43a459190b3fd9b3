#pragma once
// Warp-level building blocks of the fused attention kernels (attention_kernels.cu): asynchronous
// tile copies into shared memory, ldmatrix loads and bf16 tensor-core MMAs (mma.sync m16n8k16,
// fp32 accumulate), and the two warp GEMMs every attention matmul reduces to:
//   warp_scores: C[16 MT x 8 NT]  = A[rows, hd] . B[cols, hd]^T   (both operands in shared memory)
//   warp_pv:     C[16 MT x hd]   += P[16 MT x K] . B[K, hd]      (P from registers, B in shared)
// Forward S = Q K^T and O += P V, backward S^T = K Q^T, dP^T = V dO^T, dV += P^T dO,
// dK += dS^T Q, S, dP = dO V^T and dQ += dS K are all one of the two.
//
// Register fragments follow the PTX ISA's m16n8k16 layouts. With g = lane / 4, t = lane % 4:
// an accumulator tile c[4] holds rows (g, g, g + 8, g + 8) and columns (2t, 2t + 1, 2t, 2t + 1);
// so element e of c[m][n] sits at row 16 m + g + 8 (e / 2), column 8 n + 2 t + (e % 2). Two
// adjacent accumulator tiles of a row block are, packed to bf16, exactly the A fragment of one
// k16 step (pack_a_fragments), which is how P and dS feed the second matmul without shared memory.
#include <cuda_bf16.h>

#include <cstdint>

namespace vdit::cuda::attn {

using bf16 = __nv_bfloat16;

// Shared-memory tiles are row-major with 8 bf16 (16 bytes) of padding per row: the rows that the
// 8 lanes of one ldmatrix phase address then fall on 8 different 16-byte bank groups.
constexpr int kPad = 8;
template <int HD>
constexpr int kStride = HD + kPad;

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global->shared copy that bypasses registers; with valid = false it writes zeros (the
// rows past the end of a sequence must be finite: 0 * NaN would poison the MMAs).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(smem)),
               "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_address(smem)), "l"(gmem)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Copies rows [0, ROWS) of a token-major tensor (row i at g + i * ld) into a padded shared tile;
// rows >= valid_rows are zero-filled. All THREADS threads of the block take part.
template <int ROWS, int HD, int THREADS>
__device__ __forceinline__ void load_tile_async(bf16* smem, const bf16* g, int64_t ld, int valid_rows,
                                                int tid) {
  constexpr int kChunksPerRow = HD / 8;
  constexpr int kChunks = ROWS * kChunksPerRow;
  static_assert(kChunks % THREADS == 0, "tile copy must divide evenly among the threads");
#pragma unroll
  for (int it = 0; it < kChunks / THREADS; ++it) {
    const int i = it * THREADS + tid;
    const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * 8;
    const bool valid = r < valid_rows;
    cp_async_16(smem + r * kStride<HD> + c, valid ? g + r * ld + c : g, valid);
  }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}

// d += a . b for one 16x8x16 tile.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two adjacent n8 tiles sharing one A fragment: b holds (b0, b1) of the first, then of the second.
__device__ __forceinline__ void mma_bf16_x2(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4],
                                            const uint32_t (&b)[4]) {
  mma_bf16(c0, a, b[0], b[1]);
  mma_bf16(c1, a, b[2], b[3]);
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) at the lower address
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 2^x on the special-function unit (ex2.approx: 2 ulp; 2^-inf = 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Row and column, within a warp's [16 MT x 8 NT] accumulator block, of element e of tile (m, n)
// held by `lane`. Every per-element pass over scores (softmax, masks, statistics) indexes by these.
__device__ __forceinline__ int fragment_row(int m, int e, int lane) { return 16 * m + lane / 4 + 8 * (e / 2); }
__device__ __forceinline__ int fragment_col(int n, int e, int lane) { return 8 * n + 2 * (lane % 4) + e % 2; }

template <int MT, int NT>
__device__ __forceinline__ void zero(float (&c)[MT][NT][4]) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[m][n][e] = 0.0f;
}

// c = A . B^T over HD: A rows [16 MT] at sa, B rows [8 NT] at sb, both padded tiles.
template <int MT, int NT, int HD>
__device__ __forceinline__ void warp_scores(float (&c)[MT][NT][4], const bf16* sa, const bf16* sb, int lane) {
  static_assert(NT % 2 == 0 && HD % 16 == 0, "B is loaded two n8 tiles at a time");
  constexpr int S = kStride<HD>;
  zero(c);
  // A: lanes 0-15 address rows 0-15 at k 0, lanes 16-31 rows 0-15 at k 8 (matrices a0..a3).
  const bf16* a_lane = sa + (lane % 16) * S + (lane / 16) * 8;
  // B: lanes 0-7 rows 0-7 at k 0 (b0 of n tile 0), 8-15 rows 0-7 at k 8 (b1 of tile 0),
  // 16-23 rows 8-15 at k 0 (b0 of tile 1), 24-31 rows 8-15 at k 8 (b1 of tile 1).
  const bf16* b_lane = sb + ((lane % 8) + (lane / 16) * 8) * S + ((lane / 8) % 2) * 8;
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks) {
    uint32_t a[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m) ldmatrix_x4(a[m], a_lane + m * 16 * S + ks * 16);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, b_lane + np * 16 * S + ks * 16);
#pragma unroll
      for (int m = 0; m < MT; ++m) mma_bf16_x2(c[m][2 * np], c[m][2 * np + 1], a[m], b);
    }
  }
}

// The A fragments of P [16 MT x 8 NT] (accumulator layout) for NT / 2 k16 steps, rounded to bf16.
template <int MT, int NT>
__device__ __forceinline__ void pack_a_fragments(uint32_t (&a)[MT][NT / 2][4], const float (&p)[MT][NT][4]) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int k = 0; k < NT / 2; ++k) {
      a[m][k][0] = pack_bf16x2(p[m][2 * k][0], p[m][2 * k][1]);          // row g, k 2t
      a[m][k][1] = pack_bf16x2(p[m][2 * k][2], p[m][2 * k][3]);          // row g + 8, k 2t
      a[m][k][2] = pack_bf16x2(p[m][2 * k + 1][0], p[m][2 * k + 1][1]);  // row g, k 8 + 2t
      a[m][k][3] = pack_bf16x2(p[m][2 * k + 1][2], p[m][2 * k + 1][3]);  // row g + 8, k 8 + 2t
    }
}

// c += P . B: P as A fragments over KS k16 steps, B rows [16 KS] x HD at sb (row = k index).
template <int MT, int KS, int HD>
__device__ __forceinline__ void warp_pv(float (&c)[MT][HD / 8][4], const uint32_t (&p)[MT][KS][4],
                                        const bf16* sb, int lane) {
  constexpr int S = kStride<HD>;
  // Transposed loads: lanes 0-7 k rows 0-7 at column 0 (b0 of n tile 0), 8-15 k rows 8-15 at
  // column 0 (b1 of tile 0), 16-23 k rows 0-7 at column 8 (b0 of tile 1), 24-31 rows 8-15 at 8.
  const bf16* b_lane = sb + ((lane % 8) + ((lane / 8) % 2) * 8) * S + (lane / 16) * 8;
#pragma unroll
  for (int k = 0; k < KS; ++k)
#pragma unroll
    for (int np = 0; np < HD / 16; ++np) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, b_lane + k * 16 * S + np * 16);
#pragma unroll
      for (int m = 0; m < MT; ++m) mma_bf16_x2(c[m][2 * np], c[m][2 * np + 1], p[m][k], b);
    }
}

// Sum over the 4 lanes (one quad) that share an accumulator row; a fixed butterfly, so the
// result is the same bits on every run.
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

}  // namespace vdit::cuda::attn
