// Top-k attention's passes (see sparse_attention_kernels.cuh for the selection and its bound).
#include "autograd/cuda/sparse_attention_kernels.cuh"
#include "autograd/cuda/score_pass.cuh"

#include <climits>
#include <sstream>

namespace vdit::cuda {
namespace attn {
namespace {

constexpr float kSpan = 40.0f;  // the coarse window: [log2 max p - kSpan, log2 max p]

// What the passes share: the lse pass's rows, and per query where the count from the top
// crosses `keep`: the coarse bin (-1: keep every key), the count above it (then above the fine
// bin), the fine bin, and the last kept member of that fine bin (its log2 p and key).
struct SparseShape {
  RowStats rows;
  int* coarse;
  uint32_t* count_above;
  int* fine;
  float* last_log2p;
  int* last_key;
  int q_len, keep;
  __device__ int64_t at(int h, int q) const { return rows.at(h, q); }
};

// A thread's two rows as every pass after the lse pass sees them: log-sum-exp, coarse window
// [log2 max p - kSpan, log2 max p], and the crossed bins of the `known` (0, 1 or 2) levels the
// passes before have found.
struct SparseRows {
  float lse[2];
  Window window[2];
  int coarse[2], fine[2];
  __device__ void load(const SparseShape& shape, const PassPlace& at, int known) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int q = at.query(half);
      shape.rows.window(at.h, q, lse[half], window[half],
                        [](float top) { return Window{top - kSpan, kCoarseBins / kSpan}; });
      coarse[half] = known >= 1 && q < shape.q_len ? shape.coarse[shape.at(at.h, q)] : -1;
      fine[half] = known >= 2 && coarse[half] >= 0 ? shape.fine[shape.at(at.h, q)] : 0;
    }
  }
};

// The histogram passes: the coarse one over the window, the fine one inside the crossed bin.
template <bool kFine>
struct SelectPass {
  static constexpr bool kValues = false;
  static constexpr int NB = kFine ? kFineBins : kCoarseBins;
  using Hist = Histogram<1, NB, false>;  // counts only: the target is a count
  static constexpr size_t kSmemBytes = Hist::kBytes;
  SparseShape shape;
  SparseRows r;

  __device__ Hist hist(const PassPlace& at) const { return {reinterpret_cast<uint32_t*>(at.smem)}; }
  __device__ void begin(const PassPlace& at) {
    hist(at).clear(at.tid);
    r.load(shape, at, kFine ? 1 : 0);
    __syncthreads();
  }
  __device__ void tile(const PassPlace& at, ScoreTile& s, int, const bf16*) {
    const Hist h = hist(at);
    for_each_element([&](int n, int e, int half) {
      const float log2p = s[0][n][e] - r.lse[half];
      const int b = r.window[half].bin<kCoarseBins>(log2p);
      if (b < 0 || (kFine && b != r.coarse[half])) return;
      const int bin = kFine ? r.window[half].fine_bin<kFineBins>(log2p, b) : b;
      h.add(at.local_row(half), 0, bin, exp2_approx(log2p));
    });
  }
  __device__ void finish(const PassPlace& at) {
    if (at.tid >= kPassRows) return;
    const int q = at.q0 + at.tid;
    if (q >= shape.q_len) return;
    const int64_t i = shape.at(at.h, q);
    if (kFine && shape.coarse[i] < 0) return;
    const Crossing c =
        find_crossing<NB, Hist::kWords>(hist(at).row(at.tid, 0), true, 0, shape.keep, kFine ? shape.count_above[i] : 0, 0);
    // The fine histogram is always crossed: its members are the coarse bin's, which reach keep.
    if (kFine) shape.fine[i] = c.bin;
    else shape.coarse[i] = c.bin;
    shape.count_above[i] = c.count_above;
  }
};

// Collects the members of each query's crossed fine bin (up to kMembers) and picks the last one
// kept: the (keep - count above)-th largest by probability, then by lower key index, as the
// CPU's selection breaks ties. A bin with more members than that is kept whole.
struct CollectPass {
  static constexpr bool kValues = false;
  static constexpr int kMembers = 32;
  static constexpr size_t kSmemBytes = kPassRows * (sizeof(uint32_t) + kMembers * (sizeof(float) + sizeof(int)));
  SparseShape shape;
  SparseRows r;

  __device__ uint32_t* counts(const PassPlace& at) const { return reinterpret_cast<uint32_t*>(at.smem); }
  __device__ float* values(const PassPlace& at) const { return reinterpret_cast<float*>(counts(at) + kPassRows); }
  __device__ int* keys(const PassPlace& at) const { return reinterpret_cast<int*>(values(at) + kPassRows * kMembers); }
  __device__ void begin(const PassPlace& at) {
    if (at.tid < kPassRows) counts(at)[at.tid] = 0;
    r.load(shape, at, 2);
    __syncthreads();
  }
  __device__ void tile(const PassPlace& at, ScoreTile& s, int k0, const bf16*) {
    for_each_element([&](int n, int e, int half) {
      const float log2p = s[0][n][e] - r.lse[half];
      if (r.coarse[half] < 0 || r.window[half].bin<kCoarseBins>(log2p) != r.coarse[half] ||
          r.window[half].fine_bin<kFineBins>(log2p, r.coarse[half]) != r.fine[half])
        return;
      const int row = at.local_row(half);
      const uint32_t slot = atomicAdd(counts(at) + row, 1u);
      if (slot < kMembers) {
        values(at)[row * kMembers + slot] = log2p;
        keys(at)[row * kMembers + slot] = k0 + fragment_col(n, e, at.lane);
      }
    });
  }
  __device__ void finish(const PassPlace& at) {
    if (at.tid >= kPassRows) return;
    const int row = at.tid, q = at.q0 + row;
    if (q >= shape.q_len) return;
    const int64_t i = shape.at(at.h, q);
    if (shape.coarse[i] < 0) return;
    const uint32_t members = counts(at)[row];
    float* v = values(at) + row * kMembers;
    int* key = keys(at) + row * kMembers;
    if (members > kMembers) {  // keep the whole bin
      shape.last_log2p[i] = -INFINITY;
      shape.last_key[i] = INT_MAX;
      return;
    }
    // Insertion sort, best first; the arrival order of the members does not matter.
    for (uint32_t a = 1; a < members; ++a)
      for (uint32_t b = a; b > 0 && (v[b] > v[b - 1] || (v[b] == v[b - 1] && key[b] < key[b - 1])); --b) {
        const float tv = v[b];
        v[b] = v[b - 1], v[b - 1] = tv;
        const int tk = key[b];
        key[b] = key[b - 1], key[b - 1] = tk;
      }
    const uint32_t last = min(members, shape.keep - shape.count_above[i]) - 1;
    shape.last_log2p[i] = v[last];
    shape.last_key[i] = key[last];
  }
};

// The output: softmax over the kept keys times V, the probabilities entering the tensor cores
// as bf16 (as in the dense forward), normalised by their fp32 sum at the end.
template <int HD>
struct OutputPass {
  static constexpr bool kValues = true;
  static constexpr size_t kSmemBytes = 0;
  SparseShape shape;
  int heads;
  bf16* out;  // [Nq, H, HD]
  SparseRows r;
  float row_sum[2], last_log2p[2];
  int last_key[2];
  float o[1][HD / 8][4];

  __device__ void begin(const PassPlace& at) {
    zero(o);
    r.load(shape, at, 2);  // rows past the last query: coarse -1, every p 0
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const bool crossed = r.coarse[half] >= 0;
      const int64_t i = crossed ? shape.at(at.h, at.query(half)) : 0;
      last_log2p[half] = crossed ? shape.last_log2p[i] : 0.0f;
      last_key[half] = crossed ? shape.last_key[i] : 0;
      row_sum[half] = 0.0f;
    }
  }
  __device__ bool kept(int half, float log2p, int key) const {
    if (r.coarse[half] < 0) return true;
    const int b = r.window[half].bin<kCoarseBins>(log2p);
    if (b != r.coarse[half]) return b > r.coarse[half];
    const int f = r.window[half].fine_bin<kFineBins>(log2p, b);
    if (f != r.fine[half]) return f > r.fine[half];
    return log2p > last_log2p[half] || (log2p == last_log2p[half] && key <= last_key[half]);
  }
  __device__ void tile(const PassPlace& at, ScoreTile& s, int k0, const bf16* v_tile) {
    for_each_element([&](int n, int e, int half) {
      const float log2p = s[0][n][e] - r.lse[half];
      s[0][n][e] = kept(half, log2p, k0 + fragment_col(n, e, at.lane)) ? exp2_approx(log2p) : 0.0f;
      row_sum[half] += s[0][n][e];
    });
    uint32_t pa[1][kPassTiles / 2][4];
    pack_a_fragments(pa, s);
    warp_pv<1, kPassTiles / 2, HD>(o, pa, v_tile, at.lane);
  }
  __device__ void finish(const PassPlace& at) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float l = quad_sum(row_sum[half]);
      const int q = at.query(half);
      if (q >= shape.q_len) continue;
      const float inv = 1.0f / l;  // > 0: the most probable key is always kept
      bf16* row = out + (static_cast<int64_t>(q) * heads + at.h) * HD + 2 * (at.lane % 4);
#pragma unroll
      for (int d = 0; d < HD / 8; ++d)
        *reinterpret_cast<__nv_bfloat162*>(row + 8 * d) = __floats2bfloat162_rn(o[0][d][2 * half] * inv, o[0][d][2 * half + 1] * inv);
    }
  }
};

size_t carve(const SparseAttentionProblem& p, void* base, SparseShape* shape) {
  const size_t rows = static_cast<size_t>(p.heads) * p.q_len;
  Carver carver(base);
  SparseShape s{};
  s.rows = {carver.take<float>(rows), carver.take<float>(rows), p.q_len};
  s.coarse = carver.take<int>(rows);
  s.count_above = carver.take<uint32_t>(rows);
  s.fine = carver.take<int>(rows);
  s.last_log2p = carver.take<float>(rows);
  s.last_key = carver.take<int>(rows);
  s.q_len = p.q_len, s.keep = p.keep;
  if (shape) *shape = s;
  return carver.bytes();
}

template <int HD>
std::string run(const SparseAttentionProblem& pr, bf16* out, const SparseShape& shape, cudaStream_t stream) {
  const PassParams params{pr.q, pr.k, pr.v, pr.temperature, pr.scale, pr.q_len, pr.k_len, pr.heads};
  LsePass lse{};
  lse.lse2 = shape.rows.lse2, lse.max2 = shape.rows.max2, lse.q_len = pr.q_len;
  if (std::string e = launch_score_pass<HD>(params, lse, LsePass::kSmemBytes, stream, "sparse attention's lse pass"); !e.empty())
    return e;
  SelectPass<false> coarse{};
  coarse.shape = shape;
  if (std::string e = launch_score_pass<HD>(params, coarse, decltype(coarse)::kSmemBytes, stream, "sparse attention's coarse pass");
      !e.empty())
    return e;
  SelectPass<true> fine{};
  fine.shape = shape;
  if (std::string e = launch_score_pass<HD>(params, fine, decltype(fine)::kSmemBytes, stream, "sparse attention's fine pass");
      !e.empty())
    return e;
  CollectPass collect{};
  collect.shape = shape;
  if (std::string e = launch_score_pass<HD>(params, collect, CollectPass::kSmemBytes, stream, "sparse attention's selection pass");
      !e.empty())
    return e;
  OutputPass<HD> output{};
  output.shape = shape, output.heads = pr.heads, output.out = out;
  return launch_score_pass<HD>(params, output, OutputPass<HD>::kSmemBytes, stream, "sparse attention's output pass");
}

}  // namespace
}  // namespace attn

size_t sparse_attention_workspace_bytes(const SparseAttentionProblem& p) { return attn::carve(p, nullptr, nullptr); }

std::string sparse_attention(const SparseAttentionProblem& p, __nv_bfloat16* out, void* workspace, size_t workspace_bytes,
                             cudaStream_t stream) {
  std::ostringstream e;
  e << "sparse attention (CUDA): ";
  const size_t need = sparse_attention_workspace_bytes(p);
  if (p.head_dim != 64 && p.head_dim != 128) e << "head_dim " << p.head_dim << " is not supported (64 or 128)";
  else if (p.q_len < 1 || p.k_len < 1 || p.heads < 1 || p.heads > 65535 || p.keep < 1 || p.keep > p.k_len)
    e << "need Nq, Nk >= 1, 1 to 65535 heads and 1 <= keep <= Nk; got Nq " << p.q_len << ", Nk " << p.k_len << ", H "
      << p.heads << ", keep " << p.keep;
  else if (!p.q || !p.k || !p.v || !out)
    e << "q, k, v and out must be given";
  else if ((reinterpret_cast<uintptr_t>(p.q) | reinterpret_cast<uintptr_t>(p.k) | reinterpret_cast<uintptr_t>(p.v)) % 16)
    e << "q, k and v must be 16-byte aligned";
  else if (!workspace || workspace_bytes < need || reinterpret_cast<uintptr_t>(workspace) % 256)
    e << "needs a 256-byte aligned workspace of " << need << " bytes";
  else {
    attn::SparseShape shape;
    attn::carve(p, workspace, &shape);
    return p.head_dim == 64 ? attn::run<64>(p, out, shape, stream) : attn::run<128>(p, out, shape, stream);
  }
  return e.str();
}

}  // namespace vdit::cuda
