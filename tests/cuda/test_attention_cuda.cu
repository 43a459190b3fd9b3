// The CUDA attention kernels (autograd/cuda/attention_kernels.cu) against a double-precision
// reference computed on the host from the same bf16 inputs: forward (out, lse) and backward
// (dq, dk, dv, dtemperature), over key counts 1 to 4096, head dims 64 and 128, key masks (one
// batch row partly masked, one fully) and per-head temperatures.
//
// Tolerance, per tensor: the kernel rounds P (for O += P V and dV += P^T dO), dS (for dQ, dK), dO
// and O to bf16 (unit roundoff 2^-9). The reference also evaluates the same formulas with those
// roundings applied ("emulation"); the kernel may be off from the exact value by at most twice
// the emulation's worst error, plus 1e-4 of the largest sum of |terms| behind an element (the
// fp32 accumulation and exp2 approximation, ~1e-6 relative each). A wrong index, scale or mask
// gives errors of the size of the values themselves, far above this.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/cuda/attention_kernels.cuh"
#include "tests/cuda/gpu_testing.h"

namespace vdit::cuda {
namespace {

#define CUDA_OK(expr)                                                                    \
  do {                                                                                   \
    const cudaError_t e_ = (expr);                                                       \
    ASSERT_EQ(e_, cudaSuccess) << #expr << ": " << cudaGetErrorString(e_);               \
  } while (0)

float bf16_round(float x) {  // round to nearest even, as __float2bfloat16_rn
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// Device memory freed on scope exit.
template <typename T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceArray(size_t n) : count(n) {
    if (cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) ptr = nullptr;
  }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  cudaError_t upload(const std::vector<T>& h) { return cudaMemcpy(ptr, h.data(), count * sizeof(T), cudaMemcpyHostToDevice); }
  cudaError_t download(std::vector<T>& h) const {
    h.resize(count);
    return cudaMemcpy(h.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost);
  }
};

struct Case {
  const char* name;
  int64_t batch, q_len, k_len, heads, head_dim;
  KeyMaskType mask;  // batch 0 partly masked, batch 1 (when present) fully masked
  bool temperature;
  float scale;  // 0: 1 / sqrt(hd)
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

// Inputs, bf16-rounded where the kernel sees bf16.
struct Problem {
  Case c;
  float scale = 0;
  std::vector<float> q, k, v, dout, temperature, mask;  // mask as 0/1 per [B, Nk]
  std::vector<__nv_bfloat16> q16, k16, v16;
  std::vector<uint8_t> mask_u8;

  explicit Problem(const Case& cs) : c(cs) {
    scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    std::mt19937 rng(1234 + static_cast<unsigned>(c.k_len * 7 + c.q_len));
    // q, k ~ N(0, 1.5^2): logits of standard deviation ~2.3 at the default scale, so the
    // attention is neither uniform nor one-hot.
    std::normal_distribution<float> qk(0.0f, 1.5f), unit(0.0f, 1.0f);
    auto fill = [&](int64_t len, std::normal_distribution<float>& d, std::vector<float>& f, std::vector<__nv_bfloat16>& h) {
      f.resize(c.batch * len * c.heads * c.head_dim);
      h.resize(f.size());
      for (size_t i = 0; i < f.size(); ++i) f[i] = bf16_round(d(rng)), h[i] = __float2bfloat16(f[i]);
    };
    fill(c.q_len, qk, q, q16);
    fill(c.k_len, qk, k, k16);
    fill(c.k_len, unit, v, v16);
    dout.resize(q.size());
    for (float& x : dout) x = unit(rng);
    for (int64_t h = 0; h < c.heads; ++h) temperature.push_back(0.6f + 0.35f * h);
    mask.assign(c.batch * c.k_len, 1.0f);
    if (c.mask != KeyMaskType::none) {
      // Batch 0: every third key and a block of an eighth of them masked (key 0 kept).
      for (int64_t j = 1; j < c.k_len; ++j)
        if (j % 3 == 1 || (j >= c.k_len / 2 && j < c.k_len / 2 + c.k_len / 8)) mask[j] = 0.0f;
      if (c.batch > 1) std::fill(mask.begin() + c.k_len, mask.begin() + 2 * c.k_len, 0.0f);
      for (int64_t b = 2; b < c.batch; ++b)
        std::copy(mask.begin(), mask.begin() + c.k_len, mask.begin() + b * c.k_len);
    }
    for (float m : mask) mask_u8.push_back(m != 0.0f);
  }
  int64_t at(int64_t b, int64_t len, int64_t i, int64_t h) const { return ((b * len + i) * c.heads + h) * c.head_dim; }
  bool masked(int64_t b) const { return c.mask != KeyMaskType::none && c.batch > 1 && b == 1; }
};

// The exact values, the emulation of the kernel's bf16 roundings, and per element the sum of
// |terms| that make it up (the scale of its fp32 rounding error).
struct Expected {
  std::vector<double> exact, emulated, magnitude;
  explicit Expected(size_t n = 0) : exact(n), emulated(n), magnitude(n) {}
};
struct Reference {
  Expected out, dq, dk, dv, dtemperature;
  std::vector<double> lse;
};

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t d = 0; d < n; ++d) s += static_cast<double>(a[d]) * b[d];
  return s;
}

Reference reference(const Problem& pb) {
  const Case& c = pb.c;
  const int64_t hd = c.head_dim;
  Reference r;
  r.out = Expected(pb.q.size());
  r.dq = Expected(pb.q.size());
  r.dk = Expected(pb.k.size());
  r.dv = Expected(pb.k.size());
  r.dtemperature = Expected(c.heads);
  r.lse.assign(c.batch * c.heads * c.q_len, -INFINITY);
  std::vector<float> dout16(pb.dout.size()), dout_abs(pb.dout.size()), v_abs(pb.v.size());
  for (size_t i = 0; i < dout16.size(); ++i) dout16[i] = bf16_round(pb.dout[i]), dout_abs[i] = std::fabs(pb.dout[i]);
  for (size_t i = 0; i < v_abs.size(); ++i) v_abs[i] = std::fabs(pb.v[i]);
  std::vector<double> s(c.k_len), x(c.k_len), out_emul16(hd);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.heads; ++h) {
      const double tau = c.temperature ? pb.temperature[h] : 1.0, cf = pb.scale / tau;
      double t_exact = 0, t_emul = 0, t_mag = 0;
      for (int64_t i = 0; i < c.q_len; ++i) {
        const float* qi = &pb.q[pb.at(b, c.q_len, i, h)];
        double m = -INFINITY;
        for (int64_t j = 0; j < c.k_len; ++j) {
          x[j] = dot(qi, &pb.k[pb.at(b, c.k_len, j, h)], hd);
          s[j] = pb.mask[b * c.k_len + j] != 0.0f ? cf * x[j] : -INFINITY;
          m = std::max(m, s[j]);
        }
        if (m == -INFINITY) continue;  // all keys masked: out, lse (-inf) and gradients stay 0
        double sum = 0;
        for (int64_t j = 0; j < c.k_len; ++j) sum += std::exp(s[j] - m);
        const double lse = m + std::log(sum);
        r.lse[(b * c.heads + h) * c.q_len + i] = lse;
        const int64_t oi = pb.at(b, c.q_len, i, h);
        for (int64_t d = 0; d < hd; ++d) out_emul16[d] = 0;
        for (int64_t j = 0; j < c.k_len; ++j) {
          if (s[j] == -INFINITY) continue;
          const double p = std::exp(s[j] - lse), p16 = bf16_round(static_cast<float>(std::exp(s[j] - m)));
          const float* vj = &pb.v[pb.at(b, c.k_len, j, h)];
          for (int64_t d = 0; d < hd; ++d) {
            r.out.exact[oi + d] += p * vj[d];
            r.out.magnitude[oi + d] += p * std::fabs(vj[d]);
            out_emul16[d] += p16 * vj[d];
          }
        }
        for (int64_t d = 0; d < hd; ++d)
          r.out.emulated[oi + d] = bf16_round(static_cast<float>(out_emul16[d] / sum));
        // Backward of row i: D = dO . o; ds_ij = p_ij (dO_i . v_j - D).
        const float* doi = &pb.dout[oi];
        const float* do16 = &dout16[oi];
        double D = 0, D_emul = 0, D_mag = 0;
        for (int64_t d = 0; d < hd; ++d) {
          D += doi[d] * r.out.exact[oi + d];
          D_emul += do16[d] * r.out.emulated[oi + d];
          D_mag += std::fabs(doi[d] * r.out.exact[oi + d]);
        }
        for (int64_t j = 0; j < c.k_len; ++j) {
          if (s[j] == -INFINITY) continue;
          const int64_t kj = pb.at(b, c.k_len, j, h);
          const float* vj = &pb.v[kj];
          const float* kv = &pb.k[kj];
          const double p = std::exp(s[j] - lse), p16 = bf16_round(static_cast<float>(p));
          const double dp = dot(doi, vj, hd), dp_emul = dot(do16, vj, hd);
          const double ds = p * (dp - D), ds_emul = p * (dp_emul - D_emul);
          const double ds16 = bf16_round(static_cast<float>(ds_emul));
          const double ds_mag = p * (dot(&dout_abs[oi], &v_abs[kj], hd) + D_mag);
          for (int64_t d = 0; d < hd; ++d) {
            r.dq.exact[oi + d] += cf * ds * kv[d];
            r.dq.emulated[oi + d] += cf * ds16 * kv[d];
            r.dq.magnitude[oi + d] += cf * ds_mag * std::fabs(kv[d]);
            r.dk.exact[kj + d] += cf * ds * qi[d];
            r.dk.emulated[kj + d] += cf * ds16 * qi[d];
            r.dk.magnitude[kj + d] += cf * ds_mag * std::fabs(qi[d]);
            r.dv.exact[kj + d] += p * doi[d];
            r.dv.emulated[kj + d] += p16 * do16[d];
            r.dv.magnitude[kj + d] += p * std::fabs(doi[d]);
          }
          t_exact += ds * s[j];
          t_emul += ds_emul * s[j];
          t_mag += ds_mag * std::fabs(s[j]);
        }
      }
      if (c.temperature) {  // d temperature[h] = -(1 / temperature[h]) sum ds s
        r.dtemperature.exact[h] -= t_exact / tau;
        r.dtemperature.emulated[h] -= t_emul / tau;
        r.dtemperature.magnitude[h] += t_mag / tau;
      }
    }
  return r;
}

// "b 1, token 17, head 0, d 5" for element i of a [B, len, H, hd] tensor.
std::string where(const Case& c, int64_t len, int64_t i) {
  std::ostringstream os;
  os << "b " << i / (len * c.heads * c.head_dim) << ", token " << (i / (c.heads * c.head_dim)) % len << ", head "
     << (i / c.head_dim) % c.heads << ", d " << i % c.head_dim;
  return os.str();
}

// got[i] - init against e; see the file comment for the tolerance.
void expect_close(const char* what, const std::vector<float>& got, float init, const Expected& e,
                  const std::function<std::string(int64_t)>& describe) {
  ASSERT_EQ(got.size(), e.exact.size()) << what;
  double emulation_error = 0, magnitude = 0, worst = -1;
  int64_t worst_at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    emulation_error = std::max(emulation_error, std::fabs(e.emulated[i] - e.exact[i]));
    magnitude = std::max(magnitude, e.magnitude[i]);
    double err = std::fabs((static_cast<double>(got[i]) - init) - e.exact[i]);
    if (std::isnan(err)) err = INFINITY;
    if (err > worst) worst = err, worst_at = static_cast<int64_t>(i);
  }
  const double tolerance = 2 * emulation_error + 1e-4 * magnitude + 4 * FLT_EPSILON * std::fabs(init);
  EXPECT_LE(worst, tolerance) << what << ": worst at " << describe(worst_at) << ": got "
                              << got[worst_at] - init << ", exact " << e.exact[worst_at] << "; tolerance "
                              << tolerance << " = 2 x " << emulation_error
                              << " (worst error of the host emulation of the kernel's bf16 rounding) + 1e-4 x "
                              << magnitude << " (largest sum of |terms|, for fp32 accumulation)";
}

struct GpuRun {
  std::vector<float> out, lse, dq, dk, dv, dtemperature;
};
constexpr float kGradInit = 0.25f;  // gradients accumulate into buffers holding this

// Forward, then (if backward) backward into buffers pre-filled with kGradInit.
void run_on_gpu(const Problem& pb, bool backward, GpuRun* r) {
  const Case& c = pb.c;
  DeviceArray<__nv_bfloat16> q(pb.q16.size()), k(pb.k16.size()), v(pb.v16.size()), out(pb.q16.size());
  DeviceArray<float> lse(c.batch * c.heads * c.q_len), temperature(c.heads), mask_f(pb.mask.size()), dout(pb.dout.size());
  DeviceArray<uint8_t> mask_u8(pb.mask_u8.size());
  DeviceArray<float> dq(pb.q.size()), dk(pb.k.size()), dv(pb.k.size()), dtemperature(c.heads);
  ASSERT_TRUE(q.ptr && k.ptr && v.ptr && out.ptr && lse.ptr && dout.ptr && dq.ptr && dk.ptr && dv.ptr) << "cudaMalloc failed";
  CUDA_OK(q.upload(pb.q16));
  CUDA_OK(k.upload(pb.k16));
  CUDA_OK(v.upload(pb.v16));
  CUDA_OK(temperature.upload(pb.temperature));
  CUDA_OK(mask_f.upload(pb.mask));
  CUDA_OK(mask_u8.upload(pb.mask_u8));
  CUDA_OK(dout.upload(pb.dout));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));

  AttentionInputs in;
  in.shape = {c.batch, c.q_len, c.k_len, c.heads, c.head_dim};
  in.q = q.ptr, in.k = k.ptr, in.v = v.ptr;
  in.temperature = c.temperature ? temperature.ptr : nullptr;
  in.mask_type = c.mask;
  in.key_mask = c.mask == KeyMaskType::f32 ? static_cast<const void*>(mask_f.ptr)
                : c.mask == KeyMaskType::u8 ? static_cast<const void*>(mask_u8.ptr) : nullptr;
  in.scale = c.scale;
  ASSERT_EQ(attention_forward(in, out.ptr, lse.ptr, stream), "");
  if (backward) {
    const std::vector<float> init_q(pb.q.size(), kGradInit), init_k(pb.k.size(), kGradInit), init_t(c.heads, kGradInit);
    CUDA_OK(dq.upload(init_q));
    CUDA_OK(dk.upload(init_k));
    CUDA_OK(dv.upload(init_k));
    CUDA_OK(dtemperature.upload(init_t));
    const size_t bytes = attention_backward_workspace_bytes(in.shape);
    DeviceArray<unsigned char> workspace(bytes);
    ASSERT_TRUE(workspace.ptr) << "cudaMalloc of " << bytes << " workspace bytes failed";
    AttentionGrads grads{dq.ptr, dk.ptr, dv.ptr, c.temperature ? dtemperature.ptr : nullptr};
    ASSERT_EQ(attention_backward(in, out.ptr, lse.ptr, dout.ptr, grads, workspace.ptr, bytes, stream), "");
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(dq.download(r->dq));
    CUDA_OK(dk.download(r->dk));
    CUDA_OK(dv.download(r->dv));
    CUDA_OK(dtemperature.download(r->dtemperature));
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaStreamDestroy(stream));
  std::vector<__nv_bfloat16> out16;
  CUDA_OK(out.download(out16));
  r->out.resize(out16.size());
  for (size_t i = 0; i < out16.size(); ++i) r->out[i] = __bfloat162float(out16[i]);
  CUDA_OK(lse.download(r->lse));
}

class AttentionCuda : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCuda, ForwardMatchesDoubleReference) {
  VDIT_REQUIRE_GPU();
  const Problem pb(GetParam());
  const Case& c = pb.c;
  GpuRun gpu;
  run_on_gpu(pb, false, &gpu);
  if (HasFatalFailure()) return;
  const Reference ref = reference(pb);
  expect_close("out", gpu.out, 0.0f, ref.out, [&](int64_t i) { return where(c, c.q_len, i); });
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    // lse only passes through fp32 scores, sums and logs: 5e-4 absolute is ~100x their error.
    if (ref.lse[i] == -INFINITY) {
      ASSERT_EQ(gpu.lse[i], -INFINITY) << "lse of a query with every key masked, index " << i;
      continue;
    }
    ASSERT_NEAR(gpu.lse[i], ref.lse[i], 5e-4 + 1e-5 * std::fabs(ref.lse[i])) << "lse [b, h, i] flat index " << i;
  }
  for (int64_t b = 0; b < c.batch; ++b)  // a fully masked batch row: exactly 0, as on the CPU
    if (pb.masked(b))
      for (int64_t i = pb.at(b, c.q_len, 0, 0); i < pb.at(b + 1, c.q_len, 0, 0); ++i)
        ASSERT_EQ(gpu.out[i], 0.0f) << "output of a fully masked query, " << where(c, c.q_len, i);
}

TEST_P(AttentionCuda, BackwardMatchesDoubleReference) {
  VDIT_REQUIRE_GPU();
  const Problem pb(GetParam());
  const Case& c = pb.c;
  GpuRun gpu;
  run_on_gpu(pb, true, &gpu);
  if (HasFatalFailure()) return;
  const Reference ref = reference(pb);
  expect_close("dq", gpu.dq, kGradInit, ref.dq, [&](int64_t i) { return where(c, c.q_len, i); });
  expect_close("dk", gpu.dk, kGradInit, ref.dk, [&](int64_t i) { return where(c, c.k_len, i); });
  expect_close("dv", gpu.dv, kGradInit, ref.dv, [&](int64_t i) { return where(c, c.k_len, i); });
  if (c.temperature)
    expect_close("dtemperature", gpu.dtemperature, kGradInit, ref.dtemperature,
                 [](int64_t h) { return "head " + std::to_string(h); });
  for (int64_t b = 0; b < c.batch; ++b)  // a fully masked batch row passes no gradient at all
    if (pb.masked(b)) {
      for (int64_t i = pb.at(b, c.q_len, 0, 0); i < pb.at(b + 1, c.q_len, 0, 0); ++i)
        ASSERT_EQ(gpu.dq[i], kGradInit) << "dq of a fully masked query, " << where(c, c.q_len, i);
      for (int64_t i = pb.at(b, c.k_len, 0, 0); i < pb.at(b + 1, c.k_len, 0, 0); ++i) {
        ASSERT_EQ(gpu.dk[i], kGradInit) << "dk of a masked key, " << where(c, c.k_len, i);
        ASSERT_EQ(gpu.dv[i], kGradInit) << "dv of a masked key, " << where(c, c.k_len, i);
      }
    }
}

// Sizes kept so the double reference takes seconds on one core.
INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionCuda,
    ::testing::Values(Case{"keys1_hd64_u8mask", 2, 1, 1, 2, 64, KeyMaskType::u8, true, 0.0f},
                      Case{"keys7_hd128", 1, 7, 7, 3, 128, KeyMaskType::none, true, 0.0f},
                      Case{"keys130_queries513_hd128_u8mask_scale", 2, 513, 130, 2, 128, KeyMaskType::u8, false, 0.1f},
                      Case{"keys513_queries130_hd64_f32mask", 2, 130, 513, 3, 64, KeyMaskType::f32, true, 0.0f},
                      Case{"keys513_self_hd128_f32mask", 2, 513, 513, 2, 128, KeyMaskType::f32, true, 0.0f},
                      Case{"keys4096_queries96_hd64", 1, 96, 4096, 2, 64, KeyMaskType::none, true, 0.0f},
                      Case{"keys4096_queries130_hd128_f32mask", 2, 130, 4096, 2, 128, KeyMaskType::f32, true, 0.0f}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(AttentionCudaDeterminism, BackwardGivesIdenticalBitsTwice) {
  VDIT_REQUIRE_GPU();
  const Problem pb(Case{"determinism", 2, 513, 1000, 3, 128, KeyMaskType::f32, true, 0.0f});
  GpuRun first, second;
  run_on_gpu(pb, true, &first);
  run_on_gpu(pb, true, &second);
  if (HasFatalFailure()) return;
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same(first.out, second.out)) << "forward output differs between two runs";
  EXPECT_TRUE(same(first.lse, second.lse)) << "lse differs between two runs";
  EXPECT_TRUE(same(first.dq, second.dq)) << "dq differs between two runs";
  EXPECT_TRUE(same(first.dk, second.dk)) << "dk differs between two runs";
  EXPECT_TRUE(same(first.dv, second.dv)) << "dv differs between two runs";
  EXPECT_TRUE(same(first.dtemperature, second.dtemperature)) << "dtemperature differs between two runs";
}

// Argument checks happen before anything touches the device, so these run without a GPU.
TEST(AttentionCudaErrors, UnsupportedHeadDimIsAnError) {
  AttentionInputs in;
  in.shape = {1, 8, 8, 2, 96};
  const std::string e = attention_forward(in, nullptr, nullptr, nullptr);
  EXPECT_NE(e.find("head_dim 96"), std::string::npos) << e;
}

TEST(AttentionCudaErrors, TemperatureGradientWithoutTemperatureIsAnError) {
  alignas(16) static __nv_bfloat16 token[64];
  alignas(16) static float grad[64];
  AttentionInputs in;
  in.shape = {1, 1, 1, 1, 64};
  in.q = in.k = in.v = token;
  AttentionGrads grads;
  grads.dtemperature = grad;
  const std::string e = attention_backward(in, token, grad, grad, grads, nullptr, 0, nullptr);
  EXPECT_NE(e.find("no temperature was given"), std::string::npos) << e;
}

TEST(AttentionCudaErrors, MisalignedGradientIsAnError) {
  alignas(16) static __nv_bfloat16 token[64];
  alignas(16) static float grad[66];
  AttentionInputs in;
  in.shape = {1, 1, 1, 1, 64};
  in.q = in.k = in.v = token;
  AttentionGrads grads;
  grads.dk = grad + 1;
  const std::string e = attention_backward(in, token, grad, grad, grads, nullptr, 0, nullptr);
  EXPECT_NE(e.find("8-byte aligned"), std::string::npos) << e;
}

// Not a test: `--gtest_also_run_disabled_tests --gtest_filter=*Benchmark*` prints the throughput
// at the Wan2.1-1.3B attention shapes.
TEST(AttentionCudaBenchmark, DISABLED_PrintsThroughputAtWanShapes) {
  VDIT_REQUIRE_GPU();
  for (int64_t tokens : {4096, 32760}) {
    const AttentionTiming t = attention_benchmark(1, 12, tokens, 128);
    ASSERT_EQ(t.error, "");
    std::printf("attention B 1, H 12, hd 128, N %ld: forward %.3f ms (%.1f TFLOP/s), forward+backward %.3f ms (%.1f TFLOP/s)\n",
                static_cast<long>(tokens), t.forward_ms, t.forward_tflops, t.forward_backward_ms,
                t.forward_backward_tflops);
  }
}

}  // namespace
}  // namespace vdit::cuda
