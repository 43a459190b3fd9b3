// The attention statistics' passes (see attention_stats_kernels.cuh for what each computes and
// the error bound of the keys holding 90% / 95%).
#include "autograd/cuda/attention_stats_kernels.cuh"
#include "autograd/cuda/topk_selection.cuh"

#include <algorithm>
#include <climits>
#include <sstream>

namespace vdit::cuda {
namespace attn {
namespace {

constexpr float kLn2 = 0.6931471805599453f;
constexpr float kKeyMassUnit = 4294967296.0f;  // 2^32: key masses summed over up to 2^31 queries
constexpr int kTargets = 2;                    // 90% and 95%
__constant__ double kTargetMass[kTargets] = {0.90 * 2147483648.0, 0.95 * 2147483648.0};

// Per query, in this order: entropy, best key over the threshold, keys for 90%, keys for 95%,
// frame distances, rings (the `totals`), then the key groups of the pooled map.
struct Columns {
  int frames, rings, groups;
  __host__ __device__ int totals() const { return 4 + frames + rings; }
  __host__ __device__ int count() const { return totals() + groups; }
  // Words between rows of a per-row array of n in shared memory: odd, so that the rows one
  // instruction of a warp touches fall in different banks.
  __host__ __device__ static int stride(int n) { return n | 1; }
};

// What the statistics passes share: the lse pass's rows; the coarse window is the top-k
// selection's.
struct StatsShape {
  RowStats rows;
  int q_len, k_len;
  __device__ int64_t at(int h, int q) const { return rows.at(h, q); }
  __device__ void window(int h, int q, float& lse, Window& w) const {
    rows.window(h, q, lse, w, [](float top) { return select_window(top); });
  }
};

// Where the coarse pass leaves each target's crossing: [H, Nq, kTargets] each.
struct CrossingArrays {
  int* bin;
  uint32_t* count_above;
  unsigned long long* mass_above;
};

// A row's running sum over one key segment (a key group, a frame) at a time, added into the
// row's column for that segment in `per_query` when the segment changes (a few times per row:
// keys arrive in order, the pass wrapping around once) and at the end: one global
// read-modify-write per visit of a segment, by the one lane that owns the row. per_query
// starts at zero.
struct SegmentColumn {
  float sum[2];
  int seg[2];
  __device__ void begin() { sum[0] = sum[1] = 0.0f, seg[0] = seg[1] = -1; }
  // column(seg) is the per_query column the segment's mass goes to.
  template <class Column>
  __device__ void add(int half, int segment, float value, float* row, Column column) {
    if (segment != seg[half]) {
      flush(half, row, column);
      seg[half] = segment;
    }
    sum[half] += value;
  }
  template <class Column>
  __device__ void flush(int half, float* row, Column column) {
    if (seg[half] >= 0 && row) row[column(seg[half])] += sum[half];
    sum[half] = 0.0f;
  }
};

// Pass 2: everything but the fine histograms. Shared memory: the coarse histogram, the warps'
// per-key sums of one tile, and per row the mass by ring; mass by key group (the pooled map) and
// by frame distance go straight to per_query (SegmentColumn).
struct CoarseStatsPass {
  static constexpr bool kValues = false;
  static constexpr bool kRotate = true;  // every block adds into key_mass
  using Hist = Histogram<1, kCoarseBins>;
  StatsShape shape;
  Columns columns;
  int height, width;  // of a frame; columns.frames 0 for cross-attention
  int query_stride;   // query i of the pass is token i * query_stride
  float sink_threshold;
  float* per_query;  // [H, Nq, columns.count()]
  unsigned long long* key_mass;
  CrossingArrays crossing;
  TopKShape select;  // keep 0: no top-k selection
  float lse[2], entropy[2];
  Window window[2];
  int fq[2], hq[2], wq[2], own_frame[2];  // the query's frame, row, column; its frame's first key
  SegmentColumn groups, frames;

  static size_t smem_bytes(const Columns& c) {
    return Hist::kBytes + (4 * kPassKeys + static_cast<size_t>(kPassRows) * Columns::stride(c.rings)) * 4;
  }
  // The query's per_query row, null past the last query.
  __device__ float* out_row(const PassPlace& at, int half) const {
    const int q = at.query(half);
    return q < shape.q_len ? per_query + shape.at(at.h, q) * columns.count() : nullptr;
  }
  __device__ int group_column(int g) const { return columns.totals() + g; }
  __device__ int frame_column(int half, int f) const { return 4 + abs(f - fq[half]); }
  __device__ Hist hist(const PassPlace& at) const { return {reinterpret_cast<uint32_t*>(at.smem)}; }
  __device__ float* column_sums(const PassPlace& at) const { return reinterpret_cast<float*>(at.smem + Hist::kBytes); }
  __device__ uint32_t* ring_mass(const PassPlace& at) const {
    return reinterpret_cast<uint32_t*>(column_sums(at) + 4 * kPassKeys);
  }

  __device__ void begin(const PassPlace& at) {
    hist(at).clear(at.tid);
    for (int i = at.tid; i < kPassRows * Columns::stride(columns.rings); i += kPassThreads) ring_mass(at)[i] = 0;
    groups.begin();
    frames.begin();
    const int frame_size = height * width;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int q = at.query(half);
      shape.window(at.h, q, lse[half], window[half]);
      entropy[half] = 0.0f;
      const int token = q * query_stride;
      if (columns.frames)
        fq[half] = token / frame_size, hq[half] = token % frame_size / width, wq[half] = token % width,
        own_frame[half] = fq[half] * frame_size;
    }
    __syncthreads();
  }

  __device__ void tile(const PassPlace& at, ScoreTile& s, int k0, const bf16*) {
    const Hist h = hist(at);
    const int frame_size = height * width;
    for_each_element([&](int n, int e, int half) {
      const int row = at.local_row(half), key = k0 + fragment_col(n, e, at.lane);
      const float log2p = s[0][n][e] - lse[half], p = exp2_approx(log2p);
      if (!(p == 0.0f)) entropy[half] -= p * log2p;  // a NaN from q or k stays visible
      const int b = window[half].bin<kCoarseBins>(log2p);
      if (b >= 0) h.add(row, 0, b, p);
      const int in_frame = key - own_frame[half];
      if (columns.frames && p > 0.0f && in_frame >= 0 && in_frame < frame_size) {
        const int kh = in_frame / width, ring = max(abs(kh - hq[half]), abs(in_frame - kh * width - wq[half]));
        atomicAdd(ring_mass(at) + row * Columns::stride(columns.rings) + ring, __float2uint_rn(p * kMassUnit));
      }
      s[0][n][e] = p;
    });
    add_key_mass(at, s, k0);
    const int last = shape.k_len - 1, group_count = columns.groups, k_len = shape.k_len;
    float whole[2];
    row_sums(s, whole);
    segment_sums(
        s, k0, last, at.lane, whole, [=](int key) { return ((key + 1) * group_count - 1) / k_len; },
        [=](int g) { return g * k_len / group_count; },
        [&](int half, int g, float sum) { groups.add(half, g, sum, out_row(at, half), [&](int x) { return group_column(x); }); });
    if (columns.frames)
      segment_sums(
          s, k0, last, at.lane, whole, [=](int key) { return key / frame_size; }, [=](int f) { return f * frame_size; },
          [&](int half, int f, float sum) { frames.add(half, f, sum, out_row(at, half), [&](int x) { return frame_column(half, x); }); });
  }

  // Each key's mass over the block's queries: within a warp over its 16 rows by shuffles, then
  // over the warps in order, added to the head's running total as an integer.
  __device__ void add_key_mass(const PassPlace& at, const ScoreTile& p, int k0) {
    float* sums = column_sums(at);
#pragma unroll
    for (int n = 0; n < kPassTiles; ++n)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        float v = p[0][n][c] + p[0][n][c + 2];
        for (int offset = 4; offset < 32; offset *= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
        if (at.lane < 4) sums[at.warp * kPassKeys + fragment_col(n, c, at.lane)] = v;
      }
    __syncthreads();
    const int key = k0 + at.tid;
    if (at.tid < kPassKeys && key < shape.k_len) {
      const float total = sums[at.tid] + sums[kPassKeys + at.tid] + sums[2 * kPassKeys + at.tid] + sums[3 * kPassKeys + at.tid];
      atomicAdd(key_mass + static_cast<int64_t>(at.h) * shape.k_len + key, __float2ull_rn(total * kKeyMassUnit));
    }
  }

  __device__ void finish(const PassPlace& at) {
    const int C = columns.count();
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float total = quad_sum(entropy[half]);
      const int q = at.query(half);
      if (at.lane % 4 == 0 && q < shape.q_len) {
        float* out = per_query + shape.at(at.h, q) * C;
        out[0] = total * kLn2;
        out[1] = exp2f(shape.rows.max2[shape.at(at.h, q)] - lse[half]) > sink_threshold ? 1.0f : 0.0f;
      }
    }
    static_assert(kPassThreads == kPassRows * kTargets, "one thread per (row, target)");
    const int row = at.tid / kTargets, t = at.tid % kTargets, q = at.q0 + row;
    if (q < shape.q_len) {
      const Crossing c = find_crossing<kCoarseBins>(hist(at).row(row, 0), false,
                                                    static_cast<uint64_t>(kTargetMass[t]), 0, 0, 0);
      const int64_t i = shape.at(at.h, q) * kTargets + t;
      crossing.bin[i] = c.bin;
      crossing.count_above[i] = c.count_above;
      crossing.mass_above[i] = c.mass_above;
    }
    // The top-k selection's coarse level: the same histogram's counts.
    if (select.keep > 0 && at.tid < kPassRows && at.q0 + at.tid < shape.q_len)
      select.record<false, Hist::kWords>(shape.at(at.h, at.q0 + at.tid), hist(at).row(at.tid, 0));
    if (at.lane % 4 == 0)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        groups.flush(half, out_row(at, half), [&](int x) { return group_column(x); });
        frames.flush(half, out_row(at, half), [&](int x) { return frame_column(half, x); });
      }
    for (int i = at.tid; i < kPassRows * columns.rings; i += kPassThreads) {
      const int r = i / columns.rings, c = i % columns.rings, qr = at.q0 + r;
      if (qr < shape.q_len)
        per_query[shape.at(at.h, qr) * C + 4 + columns.frames + c] = ring_mass(at)[r * Columns::stride(columns.rings) + c] / kMassUnit;
    }
  }
};

// Pass 3: the fine histogram inside each target's crossed coarse bin, then the key counts; and
// with a top-k selection its fine level (a count-only histogram inside its crossed coarse bin).
struct FineCountPass {
  static constexpr bool kValues = false;
  using Hist = Histogram<kTargets, kFineBins>;
  using SelectHist = Histogram<1, kFineBins, false>;
  static constexpr size_t kSmemBytes = Hist::kBytes + SelectHist::kBytes;
  StatsShape shape;
  int columns;
  float* per_query;
  CrossingArrays crossing;
  TopKShape select;  // keep 0: no top-k selection
  float lse[2];
  Window window[2];
  int coarse[2][kTargets], select_coarse[2];

  __device__ Hist hist(const PassPlace& at) const { return {reinterpret_cast<uint32_t*>(at.smem)}; }
  __device__ SelectHist select_hist(const PassPlace& at) const {
    return {reinterpret_cast<uint32_t*>(at.smem + Hist::kBytes)};
  }

  __device__ void begin(const PassPlace& at) {
    hist(at).clear(at.tid);
    select_hist(at).clear(at.tid);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int q = at.query(half);
      shape.window(at.h, q, lse[half], window[half]);
      for (int t = 0; t < kTargets; ++t) coarse[half][t] = q < shape.q_len ? crossing.bin[shape.at(at.h, q) * kTargets + t] : -1;
      select_coarse[half] = select.keep > 0 && q < shape.q_len ? select.coarse[shape.at(at.h, q)] : -1;
    }
    __syncthreads();
  }

  __device__ void tile(const PassPlace& at, ScoreTile& s, int, const bf16*) {
    const Hist h = hist(at);
    for_each_element([&](int n, int e, int half) {
      const float log2p = s[0][n][e] - lse[half];
      const int b = window[half].bin<kCoarseBins>(log2p);
      const bool target = b == coarse[half][0] || b == coarse[half][1];
      if (b < 0 || (!target && b != select_coarse[half])) return;  // most keys: no exp, no atomic
      const int fine = window[half].fine_bin<kFineBins>(log2p, b);
      if (b == select_coarse[half]) select_hist(at).add(at.local_row(half), 0, fine, 0.0f);
      if (!target) return;
      const float p = exp2_approx(log2p);
#pragma unroll
      for (int t = 0; t < kTargets; ++t)
        if (b == coarse[half][t]) h.add(at.local_row(half), t, fine, p);
    });
  }

  __device__ void finish(const PassPlace& at) {
    if (select.keep > 0 && at.tid < kPassRows && at.q0 + at.tid < shape.q_len)
      select.record<true, SelectHist::kWords>(shape.at(at.h, at.q0 + at.tid), select_hist(at).row(at.tid, 0));
    const int row = at.tid / kTargets, t = at.tid % kTargets, q = at.q0 + row;
    if (q >= shape.q_len) return;
    const int64_t i = shape.at(at.h, q) * kTargets + t;
    uint64_t keys = static_cast<uint64_t>(shape.k_len);  // not crossed (rounding): every key
    if (crossing.bin[i] >= 0) {
      const uint32_t* bins = hist(at).row(row, t);
      const uint64_t target = static_cast<uint64_t>(kTargetMass[t]);
      const Crossing c = find_crossing<kFineBins>(bins, false, target, 0, crossing.count_above[i], crossing.mass_above[i]);
      if (c.bin >= 0) {
        // ceil(needed / mean p of the bin), at least one key and at most the bin's members.
        const uint64_t count = bins[2 * c.bin], mass = bins[2 * c.bin + 1], needed = target - c.mass_above;
        const uint64_t estimate = (needed * count + mass - 1) / mass;
        keys = c.count_above + (estimate < 1 ? 1 : estimate > count ? count : estimate);
      }
    }
    per_query[shape.at(at.h, q) * columns + 2 + t] = static_cast<float>(keys);
  }
};

// Pass 4: per head and output, the sum over queries (and of squares) of one column, or the sum
// over a query group of one key group's column, in double, in a fixed order.
__global__ void reduce_queries_kernel(const float* __restrict__ per_query, Columns columns, int q_len, int query_groups,
                                      double* __restrict__ sums) {
  constexpr int kThreads = 256;
  __shared__ double partial[2][kThreads];
  const int o = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, totals = columns.totals();
  int column = o;
  int64_t r0 = 0, r1 = q_len;
  if (o >= totals) {
    const int g = o - totals, gq = g / columns.groups;
    column = totals + g % columns.groups;
    r0 = static_cast<int64_t>(gq) * q_len / query_groups;
    r1 = static_cast<int64_t>(gq + 1) * q_len / query_groups;
  }
  double sum = 0.0, squares = 0.0;
  for (int64_t r = r0 + tid; r < r1; r += kThreads) {
    const double v = per_query[(static_cast<int64_t>(h) * q_len + r) * columns.count() + column];
    sum += v;
    squares += v * v;
  }
  partial[0][tid] = sum;
  partial[1][tid] = squares;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (tid < width) partial[0][tid] += partial[0][tid + width], partial[1][tid] += partial[1][tid + width];
    __syncthreads();
  }
  if (tid != 0) return;
  double* out = sums + static_cast<int64_t>(h) * (2 * totals + query_groups * columns.groups);
  if (o < totals) out[2 * o] = partial[0][0], out[2 * o + 1] = partial[1][0];
  else out[2 * totals + o - totals] = partial[0][0];
}

Columns columns_of(const AttentionStatsProblem& p) {
  return {p.frames, p.frames ? std::max(p.height, p.width) : 0, p.key_groups};
}

// The workspace's parts, in order.
struct StatsWorkspace {
  float *lse2, *max2, *per_query;
  CrossingArrays crossing;
};

size_t carve(const AttentionStatsProblem& p, void* base, StatsWorkspace* w) {
  const size_t rows = static_cast<size_t>(p.heads) * p.q_len;
  Carver carver(base);
  StatsWorkspace parts;
  parts.lse2 = carver.take<float>(rows);
  parts.max2 = carver.take<float>(rows);
  parts.per_query = carver.take<float>(rows * columns_of(p).count());
  parts.crossing.bin = carver.take<int>(rows * kTargets);
  parts.crossing.count_above = carver.take<uint32_t>(rows * kTargets);
  parts.crossing.mass_above = carver.take<unsigned long long>(rows * kTargets);
  if (w) *w = parts;
  return carver.bytes();
}

std::string check(const AttentionStatsProblem& p) {
  std::ostringstream e;
  e << "attention statistics (CUDA): ";
  if (p.head_dim != 64 && p.head_dim != 128) e << "head_dim " << p.head_dim << " is not supported (64 or 128)";
  else if (p.q_len < 1 || p.k_len < 2 || p.heads < 1 || p.heads > 65535)
    e << "need a query, two keys and 1 to 65535 heads; got Nq " << p.q_len << ", Nk " << p.k_len << ", H " << p.heads;
  else if (!p.q || !p.k || reinterpret_cast<uintptr_t>(p.q) % 16 || reinterpret_cast<uintptr_t>(p.k) % 16)
    e << "q and k must be given, 16-byte aligned";
  else if (p.frames && static_cast<int64_t>(p.frames) * p.height * p.width != p.k_len)
    e << "the grid " << p.frames << "x" << p.height << "x" << p.width << " does not hold " << p.k_len << " keys";
  else if (p.query_groups < 1 || p.key_groups < 1 || p.query_groups > p.q_len || p.key_groups > p.k_len ||
           static_cast<int64_t>(p.k_len + 1) * p.key_groups > INT_MAX)  // key group arithmetic in int
    e << "pooled map of " << p.query_groups << "x" << p.key_groups << " groups over " << p.q_len << "x" << p.k_len << " tokens";
  else if (p.keep < 0 || p.keep > p.k_len)
    e << "keep " << p.keep << " of " << p.k_len << " keys";
  else if (p.query_stride < 1 || (p.frames && static_cast<int64_t>(p.q_len - 1) * p.query_stride >= p.k_len))
    e << "query stride " << p.query_stride << " for " << p.q_len << " queries over " << p.k_len << " tokens";
  else
    return {};
  return e.str();
}

template <int HD>
std::string run(const AttentionStatsProblem& pr, double* sums, unsigned long long* key_mass, const StatsWorkspace& w,
                const TopKShape& select, cudaStream_t stream) {
  const PassParams params{pr.q, pr.k, nullptr, pr.temperature, pr.scale, pr.q_len, pr.k_len, pr.heads, pr.query_stride};
  const Columns columns = columns_of(pr);
  const StatsShape shape{select.rows, pr.q_len, pr.k_len};
  cudaError_t e = cudaMemsetAsync(key_mass, 0, static_cast<size_t>(pr.heads) * pr.k_len * sizeof(unsigned long long), stream);
  if (e != cudaSuccess) return std::string("attention statistics (CUDA): ") + cudaGetErrorString(e);

  LsePass lse{};
  lse.lse2 = shape.rows.lse2, lse.max2 = shape.rows.max2, lse.q_len = pr.q_len;
  if (std::string err = launch_score_pass<HD>(params, lse, LsePass::kSmemBytes, stream, "attention statistics' lse pass"); !err.empty())
    return err;
  // The coarse pass adds the pooled map's and the frame distances' columns into per_query.
  e = cudaMemsetAsync(w.per_query, 0, static_cast<size_t>(pr.heads) * pr.q_len * columns.count() * sizeof(float), stream);
  if (e != cudaSuccess) return std::string("attention statistics (CUDA): ") + cudaGetErrorString(e);
  CoarseStatsPass coarse{};
  coarse.shape = shape, coarse.columns = columns, coarse.height = pr.height, coarse.width = pr.width;
  coarse.query_stride = pr.query_stride;
  coarse.sink_threshold = pr.sink_threshold, coarse.per_query = w.per_query, coarse.key_mass = key_mass;
  coarse.crossing = w.crossing, coarse.select = select;
  if (std::string err = launch_score_pass<HD>(params, coarse, CoarseStatsPass::smem_bytes(columns), stream,
                                              "attention statistics' main pass");
      !err.empty())
    return err;
  FineCountPass fine{};
  fine.shape = shape, fine.columns = columns.count(), fine.per_query = w.per_query, fine.crossing = w.crossing;
  fine.select = select;
  if (std::string err = launch_score_pass<HD>(params, fine, FineCountPass::kSmemBytes, stream, "attention statistics' count pass");
      !err.empty())
    return err;
  reduce_queries_kernel<<<dim3(columns.totals() + pr.query_groups * pr.key_groups, pr.heads), 256, 0, stream>>>(
      w.per_query, columns, pr.q_len, pr.query_groups, sums);
  e = cudaGetLastError();
  return e == cudaSuccess ? std::string() : std::string("attention statistics (CUDA): reduction: ") + cudaGetErrorString(e);
}

}  // namespace
}  // namespace attn

AttentionStatsLayout attention_stats_layout(const AttentionStatsProblem& p) {
  const attn::Columns c = attn::columns_of(p);
  return {c.frames, c.rings, c.totals(), p.query_groups * p.key_groups};
}

size_t attention_stats_workspace_bytes(const AttentionStatsProblem& p) { return attn::carve(p, nullptr, nullptr); }

std::string attention_stats(const AttentionStatsProblem& p, double* sums, unsigned long long* key_mass, void* workspace,
                            size_t workspace_bytes, cudaStream_t stream, const TopKSelection* selection) {
  if (std::string e = attn::check(p); !e.empty()) return e;
  const size_t need = attention_stats_workspace_bytes(p);
  if (!sums || !key_mass || !workspace || workspace_bytes < need || reinterpret_cast<uintptr_t>(workspace) % 256)
    return "attention statistics (CUDA): need sums, key_mass and a 256-byte aligned workspace of " +
           std::to_string(need) + " bytes";
  if (p.keep > 0 && !selection) return "attention statistics (CUDA): keep " + std::to_string(p.keep) + " needs a selection";
  attn::StatsWorkspace w;
  attn::carve(p, workspace, &w);
  attn::TopKShape select{{w.lse2, w.max2, p.q_len}, nullptr, nullptr, nullptr, nullptr, nullptr, p.q_len, 0};
  if (p.keep > 0)
    select = {{selection->lse2, selection->max2, p.q_len}, selection->coarse, selection->count_above, selection->fine,
              selection->last_log2p, selection->last_key, p.q_len, p.keep};
  return p.head_dim == 64 ? attn::run<64>(p, sums, key_mass, w, select, stream)
                          : attn::run<128>(p, sums, key_mass, w, select, stream);
}

}  // namespace vdit::cuda
