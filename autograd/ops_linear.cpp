// GEMM-backed ops: linear (y = x W^T + b) and batched matmul. Backward is two more GEMMs that
// write straight into the gradient buffers (beta = 0 into a new buffer, 1 to accumulate), so
// no temporaries are made. Frozen bf16 weights are multiplied in bf16 where the CPU can
// (autograd/gemm_bf16.h), and widened to a float32 copy for the call elsewhere.
#include <omp.h>

#include "autograd/blas.h"
#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/gemm_bf16.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"
#include "autograd/parallel.h"
#include "autograd/parallel_errors.h"

namespace vdit {

namespace {

// C[rows, n] = A op(W) + beta C for a weight W [out, in] as stored: op(W) = W^T (the forward,
// n = out) or W (dx = dy W, n = in).
void times_weight(bool transpose_w, int64_t rows, int64_t n, int64_t k, const float* a, const Tensor& weight,
                  float beta, float* c) {
  const int64_t ld_w = weight.size(1);
  if (weight.dtype() == DType::BF16 && gemm::bf16_path() == gemm::Bf16Path::Native) {
    gemm::gemm_bf16(transpose_w, rows, n, k, a, k, weight.bf16_data(), ld_w, beta, c, n);
    return;
  }
  const Tensor w = weight.to_f32();
  blas::sgemm(false, transpose_w, rows, n, k, 1.0f, a, k, w.data(), ld_w, beta, c, n);
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& weight, const Tensor& bias) {
  VDIT_CHECK(weight.ndim() == 2, "linear weight must be 2-d [out, in], got " << to_string(weight.shape()));
  const int64_t out_features = weight.size(0), in_features = weight.size(1);
  VDIT_CHECK(x_in.ndim() >= 1 && x_in.size(-1) == in_features,
             "linear input " << to_string(x_in.shape()) << " does not match weight "
                             << to_string(weight.shape()));
  VDIT_CHECK(!bias.defined() || bias.shape() == Shape{out_features},
             "linear bias " << to_string(bias.shape()) << " does not match weight " << to_string(weight.shape()));
  if (on_cuda("linear", {&x_in, &weight, &bias}))
    return cuda_op(&CudaBackend::linear, "linear")(x_in, weight, bias);
  const Tensor x = x_in.to_f32();
  const int64_t rows = x.numel() / in_features;
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape);
  times_weight(true, rows, out_features, in_features, x.data(), weight, 0.0f, out.data());
  if (bias.defined()) {
    const Tensor b = bias.to_f32();
    const float* pb = b.data();
    float* py = out.data();
#pragma omp parallel for if (rows * out_features > (1 << 15)) schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < out_features; ++j) py[r * out_features + j] += pb[j];
  }
  if (!needs_grad({&x_in, &weight, &bias})) return out;

  GradRef go = Tape::output(out), gx = x_in.grad_ref(), gw = weight.grad_ref();
  GradRef gb = bias.defined() ? bias.grad_ref() : nullptr;
  // dx needs W, dW needs x: each is kept only when its partner needs a gradient.
  Tensor saved_x = gw ? x : Tensor();
  Tensor saved_w = gx ? weight : Tensor();
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy) return;
    bool fresh = false;
    if (gx) {
      float* dx = gx->buffer_for_write(&fresh);
      times_weight(false, rows, in_features, out_features, dy, saved_w, fresh ? 0.0f : 1.0f, dx);
    }
    if (gw) {
      float* dw = gw->buffer_for_write(&fresh);
      blas::sgemm(true, false, out_features, in_features, rows, 1.0f, dy, out_features,
                  saved_x.data(), in_features, fresh ? 0.0f : 1.0f, dw, in_features);
    }
    if (gb)
      deterministic_row_sum(rows, out_features, gb->buffer(), [&](int64_t r, double* partial) {
        const float* dy_row = dy + r * out_features;
        for (int64_t j = 0; j < out_features; ++j) partial[j] += dy_row[j];
      });
  });
  return out;
}

namespace {

// Runs one GEMM per batch entry: in parallel (single-threaded BLAS each) when there are many
// small ones, one after another (multi-threaded BLAS) otherwise.
template <class Fn>
void for_each_batch(int64_t batches, int64_t flops_each, Fn fn) {
  const bool parallel = batches >= omp_get_max_threads() && flops_each < (int64_t{1} << 24);
  ParallelErrors errors;
#pragma omp parallel for if (parallel) schedule(dynamic)
  for (int64_t i = 0; i < batches; ++i) errors.run([&] { fn(i); });
  errors.rethrow();
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  VDIT_CHECK(a_in.ndim() >= 2 && b_in.ndim() >= 2,
             "matmul needs 2-d or batched operands, got " << to_string(a_in.shape()) << " and "
                                                          << to_string(b_in.shape()));
  if (on_cuda("matmul", {&a_in, &b_in})) return cuda_op(&CudaBackend::matmul, "matmul")(a_in, b_in);
  const Tensor a = a_in.to_f32(), b = b_in.to_f32();
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  VDIT_CHECK(b.size(-2) == k, "matmul inner sizes differ: " << to_string(a.shape()) << " x "
                                                            << to_string(b.shape()));
  const Shape batch_shape(a.shape().begin(), a.shape().end() - 2);
  const bool shared_b = b.ndim() == 2;
  VDIT_CHECK(shared_b || Shape(b.shape().begin(), b.shape().end() - 2) == batch_shape,
             "matmul batch axes differ: " << to_string(a.shape()) << " x " << to_string(b.shape()));
  const int64_t batches = numel(batch_shape);
  const int64_t b_step = shared_b ? 0 : k * n;
  Shape out_shape = batch_shape;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape);
  const float *pa = a.data(), *pb = b.data();
  float* pc = out.data();
  for_each_batch(batches, 2 * m * n * k, [&](int64_t i) {
    blas::sgemm(false, false, m, n, k, 1.0f, pa + i * m * k, k, pb + i * b_step, n, 0.0f,
                pc + i * m * n, n);
  });
  if (!needs_grad({&a_in, &b_in})) return out;

  GradRef go = Tape::output(out), ga = a_in.grad_ref(), gb = b_in.grad_ref();
  Tensor saved_a = gb ? a : Tensor(), saved_b = ga ? b : Tensor();
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy) return;
    if (ga) {  // dA = dY B^T
      float* da = ga->buffer();
      const float* sb = saved_b.data();
      for_each_batch(batches, 2 * m * n * k, [&](int64_t i) {
        blas::sgemm(false, true, m, k, n, 1.0f, dy + i * m * n, n, sb + i * b_step, n, 1.0f,
                    da + i * m * k, k);
      });
    }
    if (gb) {  // dB = A^T dY; a shared B sums over the batch, so those GEMMs run in turn
      float* db = gb->buffer();
      const float* sa = saved_a.data();
      auto one = [&](int64_t i) {
        blas::sgemm(true, false, k, n, m, 1.0f, sa + i * m * k, k, dy + i * m * n, n, 1.0f,
                    db + i * b_step, n);
      };
      if (shared_b)
        for (int64_t i = 0; i < batches; ++i) one(i);
      else
        for_each_batch(batches, 2 * m * n * k, one);
    }
  });
  return out;
}

}  // namespace vdit
