// Autograd figures (issue: foundation): raw sgemm throughput in this process, our linear
// forward+backward against it, bf16 products with frozen weights against it, and the fused
// attention's throughput and memory.
#include <omp.h>

#include <cmath>
#include <random>

#include "autograd/blas.h"
#include "autograd/gemm_bf16.h"
#include "autograd/ops.h"
#include "bench/harness.h"

namespace vdit::bench {

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed, bool requires_grad = false) {
  Tensor t = Tensor::empty(shape);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  t.set_requires_grad(requires_grad);
  return t;
}

void run_autograd() {
  report("openblas_build", blas::threading_name(blas::threading()));
  report("openblas_core", blas::core_name());

  // sgemm 4096 x 1536 x 1536, the shape of a 1.3B linear layer over 4096 tokens.
  const int64_t m = 4096, n = 1536, k = 1536;
  const double gemm_flops = 2.0 * m * n * k;
  Tensor a = random_tensor({m, k}, 1), b = random_tensor({n, k}, 2), c = Tensor::empty({m, n});
  const double t_gemm = seconds_per_call([&] {
    blas::sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  });
  const double sgemm_gflops = gemm_flops / t_gemm / 1e9;
  report("sgemm_gflops", sgemm_gflops);

  // Linear forward + backward: three GEMMs of that shape (y, dx, dW) plus bias terms.
  Tensor x = random_tensor({m, k}, 3, true), w = random_tensor({n, k}, 4, true);
  Tensor bias = random_tensor({n}, 5, true);
  const double t_linear = seconds_per_call([&] {
    x.zero_grad();
    w.zero_grad();
    bias.zero_grad();
    Tensor y = linear(x, w, bias);
    sum_all(y).backward();
  });
  const double linear_gflops = 3.0 * gemm_flops / t_linear / 1e9;
  report("linear_fwd_bwd_gflops", linear_gflops);
  report("linear_fwd_bwd_vs_sgemm", linear_gflops / sgemm_gflops);

  // The same product with the weight frozen as bf16, x narrowed in the call (gemm_bf16.h).
  if (gemm::bf16_path() == gemm::Bf16Path::Native) {
    const Tensor b_bf16 = b.to_bf16();
    const double t_bf16 = seconds_per_call([&] {
      gemm::gemm_bf16(true, m, n, k, a.data(), k, b_bf16.bf16_data(), k, 0.0f, c.data(), n);
    });
    report("bf16_gemm_gflops", gemm_flops / t_bf16 / 1e9);
    report("bf16_gemm_vs_sgemm", t_gemm / t_bf16);
  }

  // Attention, 12 heads of 128 over 4096 tokens (the 1.3B self-attention at 4096 tokens).
  // FLOPs counted as FlashAttention does: forward 4 N^2 hd per head, backward 2.5x forward.
  const int64_t tokens = 4096, heads = 12, head_dim = 128;
  Tensor q = random_tensor({1, tokens, heads, head_dim}, 6, true);
  Tensor kk = random_tensor({1, tokens, heads, head_dim}, 7, true);
  Tensor v = random_tensor({1, tokens, heads, head_dim}, 8, true);
  auto fwd_bwd = [&] {
    q.zero_grad();
    kk.zero_grad();
    v.zero_grad();
    Tensor o = attention(q, kk, v);
    sum_all(o).backward();
  };
  const double attention_flops = 3.5 * 4.0 * tokens * tokens * head_dim * heads;
  const double t_attention = seconds_per_call(fwd_bwd, 2, 2.0);
  report("attention_fwd_bwd_s", t_attention);
  report("attention_fwd_bwd_gflops", attention_flops / t_attention / 1e9);
  // How it scales over the cores: the same call on one thread, in this run.
  const int threads = omp_get_max_threads();
  if (threads > 1) {
    omp_set_num_threads(1);
    const double t_attention_1 = seconds_per_call(fwd_bwd, 2, 2.0);
    omp_set_num_threads(threads);
    report("attention_fwd_bwd_s_1_thread", t_attention_1);
    report("attention_speedup_" + std::to_string(threads) + "_threads", t_attention_1 / t_attention);
  }

  // Memory: tensor storage live at the peak of one call beyond what was live before it (the
  // inputs). O(N hd) terms only: output, log-sum-exp, the incoming gradient and dq, dk, dv.
  // The naive [H, N, N] probability matrix alone would be 12 * 4096^2 * 4 B = 768 MiB.
  q.zero_grad();
  kk.zero_grad();
  v.zero_grad();
  const double before = static_cast<double>(tensor_memory().live_bytes);
  reset_tensor_memory_peak();
  fwd_bwd();
  const double mib = 1024.0 * 1024.0;
  report("attention_input_mib", 3.0 * tokens * heads * head_dim * 4 / mib);
  report("attention_peak_mib", (static_cast<double>(tensor_memory().peak_bytes) - before) / mib);
}

Register autograd_section("autograd", "sgemm, linear and attention throughput; attention memory",
                          run_autograd);

}  // namespace

}  // namespace vdit::bench
