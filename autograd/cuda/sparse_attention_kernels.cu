// Top-k attention's passes (see sparse_attention_kernels.cuh for the selection and its bound).
#include "autograd/cuda/sparse_attention_kernels.cuh"
#include "autograd/cuda/topk_selection.cuh"

#include <sstream>

namespace vdit::cuda {
namespace attn {
namespace {

// The histogram passes: the coarse one over the window, the fine one inside the crossed bin.
template <bool kFine>
struct SelectPass {
  static constexpr bool kValues = false;
  static constexpr int NB = kFine ? kFineBins : kCoarseBins;
  using Hist = Histogram<1, NB, false>;  // counts only: the target is a count
  static constexpr size_t kSmemBytes = Hist::kBytes;
  TopKShape shape;
  TopKRows r;

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
    const int q = at.q0 + at.tid;
    if (at.tid < kPassRows && q < shape.q_len) shape.record<kFine, Hist::kWords>(shape.at(at.h, q), hist(at).row(at.tid, 0));
  }
};

// Collects the members of each query's crossed fine bin (up to kMembers) and picks the last one
// kept: the (keep - count above)-th largest by probability, then by lower key index, as the
// CPU's selection breaks ties. A bin with more members than that is filled in key order by the
// output pass (last_key -1).
struct CollectPass {
  static constexpr bool kValues = false;
  static constexpr int kMembers = 32;
  static constexpr size_t kSmemBytes = kPassRows * (sizeof(uint32_t) + kMembers * (sizeof(float) + sizeof(int)));
  TopKShape shape;
  TopKRows r;

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
    if (members > kMembers) {  // filled in key order
      shape.last_key[i] = -1;
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
// as bf16 (as in the dense forward), normalised by their fp32 sum at the end. Kept: every key
// above the crossed fine bin, and of that bin's members those up to the last one the collect
// pass picked, or, where it had too many members to sort, the first keep - (count above) in
// key order (so exactly `keep` keys either way; ties go to the lower key index, as on the CPU).
template <int HD>
struct OutputPass {
  static constexpr bool kValues = true;
  static constexpr size_t kSmemBytes = 0;
  TopKShape shape;
  int heads;
  bf16* out;  // [Nq, H, HD]
  TopKRows r;
  float row_sum[2], last_log2p[2];
  int last_key[2];  // -1: the crossed fine bin is filled in key order
  int places[2];    // members of the crossed fine bin still to keep in key order
  float o[1][HD / 8][4];

  __device__ void begin(const PassPlace& at) {
    zero(o);
    r.load(shape, at, 2);  // rows past the last query: coarse -1, every p 0
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const bool crossed = r.coarse[half] >= 0;
      const int64_t i = crossed ? shape.at(at.h, at.query(half)) : 0;
      places[half] = crossed ? shape.keep - static_cast<int>(shape.count_above[i]) : 0;
      last_log2p[half] = crossed ? shape.last_log2p[i] : 0.0f;
      last_key[half] = crossed ? shape.last_key[i] : 0;
      row_sum[half] = 0.0f;
    }
  }
  // 1: kept, 0: dropped, 2: a member of a crossed fine bin filled in key order.
  __device__ int verdict(int half, float log2p, int key) const {
    if (r.coarse[half] < 0) return 1;
    const int b = r.window[half].bin<kCoarseBins>(log2p);
    if (b != r.coarse[half]) return b > r.coarse[half];
    const int f = r.window[half].fine_bin<kFineBins>(log2p, b);
    if (f != r.fine[half]) return f > r.fine[half];
    if (last_key[half] < 0) return 2;
    return log2p > last_log2p[half] || (log2p == last_log2p[half] && key <= last_key[half]);
  }
  // Which of the tile's members each row keeps: a member's rank among the row's members of this
  // tile in key order (key 8 n + 2 t + c sits at bit 2 n + c of lane t's mask) against the
  // places left. The four lanes of a quad share the row and count the same.
  __device__ void keep_members(const PassPlace& at, const uint32_t (&members)[2], uint32_t (&kept)[2]) {
    const int t = at.lane % 4;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      uint32_t m[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) m[u] = __shfl_sync(0xffffffffu, members[half], (at.lane & ~3) | u);
      kept[half] = 0;
#pragma unroll
      for (int n = 0; n < kPassTiles; ++n) {
        const uint32_t earlier_n = (1u << (2 * n)) - 1, this_n = 3u << (2 * n);
        int rank = 0;
#pragma unroll
        for (int u = 0; u < 4; ++u) rank += __popc(m[u] & (u < t ? earlier_n | this_n : earlier_n));
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const uint32_t bit = 1u << (2 * n + c);
          if ((members[half] & bit) && rank < places[half]) kept[half] |= bit;
          rank += (members[half] & bit) ? 1 : 0;
        }
      }
      places[half] -= __popc(m[0]) + __popc(m[1]) + __popc(m[2]) + __popc(m[3]);
    }
  }
  __device__ void tile(const PassPlace& at, ScoreTile& s, int k0, const bf16* v_tile) {
    uint32_t members[2] = {0u, 0u}, kept[2] = {0u, 0u};
    for_each_element([&](int n, int e, int half) {
      s[0][n][e] -= r.lse[half];  // log2 p
      const int v = verdict(half, s[0][n][e], k0 + fragment_col(n, e, at.lane));
      if (v == 2) members[half] |= 1u << (2 * n + e % 2);
      else if (v == 1) kept[half] |= 1u << (2 * n + e % 2);
    });
    if (__any_sync(0xffffffffu, members[0] | members[1])) {
      uint32_t chosen[2];
      keep_members(at, members, chosen);
      kept[0] |= chosen[0], kept[1] |= chosen[1];
    }
    for_each_element([&](int n, int e, int half) {
      s[0][n][e] = kept[half] >> (2 * n + e % 2) & 1u ? exp2_approx(s[0][n][e]) : 0.0f;
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

TopKShape shape_of(const SparseAttentionProblem& p, const TopKSelection& s) {
  return {{s.lse2, s.max2, p.q_len}, s.coarse, s.count_above, s.fine, s.last_log2p, s.last_key, p.q_len, p.keep};
}

// The selection's last level (the collect pass) and the output.
template <int HD>
std::string output(const SparseAttentionProblem& pr, const TopKShape& shape, bf16* out, cudaStream_t stream) {
  const PassParams params{pr.q, pr.k, pr.v, pr.temperature, pr.scale, pr.q_len, pr.k_len, pr.heads, pr.query_stride};
  CollectPass collect{};
  collect.shape = shape;
  if (std::string e = launch_score_pass<HD>(params, collect, CollectPass::kSmemBytes, stream, "sparse attention's selection pass");
      !e.empty())
    return e;
  OutputPass<HD> pass{};
  pass.shape = shape, pass.heads = pr.heads, pass.out = out;
  return launch_score_pass<HD>(params, pass, OutputPass<HD>::kSmemBytes, stream, "sparse attention's output pass");
}

template <int HD>
std::string run(const SparseAttentionProblem& pr, bf16* out, const TopKShape& shape, cudaStream_t stream) {
  const PassParams params{pr.q, pr.k, pr.v, pr.temperature, pr.scale, pr.q_len, pr.k_len, pr.heads, pr.query_stride};
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
  return output<HD>(pr, shape, out, stream);
}

std::string check(const SparseAttentionProblem& p, const __nv_bfloat16* out) {
  std::ostringstream e;
  e << "sparse attention (CUDA): ";
  if (p.head_dim != 64 && p.head_dim != 128) e << "head_dim " << p.head_dim << " is not supported (64 or 128)";
  else if (p.q_len < 1 || p.k_len < 1 || p.heads < 1 || p.heads > 65535 || p.keep < 1 || p.keep > p.k_len)
    e << "need Nq, Nk >= 1, 1 to 65535 heads and 1 <= keep <= Nk; got Nq " << p.q_len << ", Nk " << p.k_len << ", H "
      << p.heads << ", keep " << p.keep;
  else if (!p.q || !p.k || !p.v || !out)
    e << "q, k, v and out must be given";
  else if ((reinterpret_cast<uintptr_t>(p.q) | reinterpret_cast<uintptr_t>(p.k) | reinterpret_cast<uintptr_t>(p.v)) % 16)
    e << "q, k and v must be 16-byte aligned";
  else
    return {};
  return e.str();
}

}  // namespace
}  // namespace attn

size_t topk_selection_bytes(int heads, int q_len) { return carve_topk_selection(nullptr, heads, q_len).second; }

std::pair<TopKSelection, size_t> carve_topk_selection(void* base, int heads, int q_len) {
  const size_t rows = static_cast<size_t>(heads) * q_len;
  attn::Carver carver(base);
  TopKSelection s;
  s.lse2 = carver.take<float>(rows), s.max2 = carver.take<float>(rows);
  s.coarse = carver.take<int>(rows), s.count_above = carver.take<uint32_t>(rows), s.fine = carver.take<int>(rows);
  s.last_log2p = carver.take<float>(rows), s.last_key = carver.take<int>(rows);
  return {s, carver.bytes()};
}

size_t sparse_attention_workspace_bytes(const SparseAttentionProblem& p) { return topk_selection_bytes(p.heads, p.q_len); }

std::string sparse_attention(const SparseAttentionProblem& p, __nv_bfloat16* out, void* workspace, size_t workspace_bytes,
                             cudaStream_t stream) {
  if (std::string e = attn::check(p, out); !e.empty()) return e;
  const size_t need = sparse_attention_workspace_bytes(p);
  if (!workspace || workspace_bytes < need || reinterpret_cast<uintptr_t>(workspace) % 256)
    return "sparse attention (CUDA): needs a 256-byte aligned workspace of " + std::to_string(need) + " bytes";
  const attn::TopKShape shape = attn::shape_of(p, carve_topk_selection(workspace, p.heads, p.q_len).first);
  return p.head_dim == 64 ? attn::run<64>(p, out, shape, stream) : attn::run<128>(p, out, shape, stream);
}

std::string sparse_attention_output(const SparseAttentionProblem& p, const TopKSelection& selection, __nv_bfloat16* out,
                                    cudaStream_t stream) {
  if (std::string e = attn::check(p, out); !e.empty()) return e;
  const attn::TopKShape shape = attn::shape_of(p, selection);
  return p.head_dim == 64 ? attn::output<64>(p, shape, out, stream) : attn::output<128>(p, shape, out, stream);
}

}  // namespace vdit::cuda
