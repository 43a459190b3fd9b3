// Row-wise ops over the last axis: softmax, LayerNorm and RMSNorm. The two norms are one
// kernel: RMSNorm is LayerNorm without centring (and without bias).
#include <cmath>
#include <vector>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"
#include "autograd/parallel.h"

namespace vdit {

Tensor softmax(const Tensor& x_in) {
  if (on_cuda("softmax", {&x_in})) return cuda_op(&CudaBackend::softmax, "softmax")(x_in);
  const Tensor x = x_in.to_f32();
  VDIT_CHECK(x.ndim() >= 1, "softmax of a scalar");
  const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0;
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = out.data();
#pragma omp parallel for if (rows * d > (1 << 15)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * d;
    float* yr = py + r * d;
    float m = -INFINITY;
    for (int64_t j = 0; j < d; ++j) m = std::max(m, xr[j]);
    float total = 0.0f;
    for (int64_t j = 0; j < d; ++j) total += (yr[j] = std::exp(xr[j] - m));
    const float inv = 1.0f / total;
    for (int64_t j = 0; j < d; ++j) yr[j] *= inv;
  }
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Tensor y = out.detach();
  Tape::record([go, gx, y, rows, d] {
    const float* dy = arrived(go);
    if (!dy) return;
    const float* py = y.data();
    float* dx = gx->buffer();
#pragma omp parallel for if (rows * d > (1 << 15)) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* yr = py + r * d;
      const float* gr = dy + r * d;
      float dot = 0.0f;
      for (int64_t j = 0; j < d; ++j) dot += gr[j] * yr[j];
      for (int64_t j = 0; j < d; ++j) dx[r * d + j] += yr[j] * (gr[j] - dot);
    }
  });
  return out;
}

namespace {

// y = (x - mu) * rstd * w + b per row, mu = mean(x) when centred (LayerNorm) and 0 otherwise
// (RMSNorm); rstd = 1 / sqrt(mean((x - mu)^2) + eps). Row sums accumulate in double.
Tensor normalize_rows(const Tensor& x_in, const Tensor& weight, const Tensor& bias, float eps,
                      bool centred) {
  const Tensor x = x_in.to_f32();
  const int64_t d = x.size(-1), rows = x.numel() / d;
  VDIT_CHECK(!weight.defined() || weight.shape() == Shape{d},
             "norm weight " << to_string(weight.shape()) << " does not match width " << d);
  VDIT_CHECK(!bias.defined() || bias.shape() == Shape{d},
             "norm bias " << to_string(bias.shape()) << " does not match width " << d);
  const Tensor w = weight.defined() ? weight.to_f32() : Tensor();
  const Tensor b = bias.defined() ? bias.to_f32() : Tensor();
  Tensor out = Tensor::empty(x.shape());
  Tensor mu = Tensor::empty({rows}), rstd = Tensor::empty({rows});
  const float* px = x.data();
  const float* pw = w.defined() ? w.data() : nullptr;
  const float* pb = b.defined() ? b.data() : nullptr;
  float *py = out.data(), *pmu = mu.data(), *prs = rstd.data();
#pragma omp parallel for if (rows * d > (1 << 15)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * d;
    double s = 0.0;
    if (centred)
      for (int64_t j = 0; j < d; ++j) s += xr[j];
    const float m = static_cast<float>(s / d);
    double ss = 0.0;
    for (int64_t j = 0; j < d; ++j) {
      double c = xr[j] - m;
      ss += c * c;
    }
    const float rs = static_cast<float>(1.0 / std::sqrt(ss / d + eps));
    pmu[r] = m;
    prs[r] = rs;
    float* yr = py + r * d;
    for (int64_t j = 0; j < d; ++j) {
      float v = (xr[j] - m) * rs;
      if (pw) v *= pw[j];
      if (pb) v += pb[j];
      yr[j] = v;
    }
  }
  if (!needs_grad({&x_in, &weight, &bias})) return out;

  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  GradRef gw = weight.defined() ? weight.grad_ref() : nullptr;
  GradRef gb = bias.defined() ? bias.grad_ref() : nullptr;
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy) return;
    const float* px = x.data();
    const float* pw = w.defined() ? w.data() : nullptr;
    const float *pmu = mu.data(), *prs = rstd.data();
    float* dx = gx ? gx->buffer() : nullptr;
    float* dw = gw ? gw->buffer() : nullptr;
    float* db = gb ? gb->buffer() : nullptr;
    // d(x) per row; the weight and bias gradients also sum over rows, into one [2d] vector.
    std::vector<float> dwb(2 * d, 0.0f);
    deterministic_row_sum(rows, 2 * d, dwb.data(), [&](int64_t r, double* partial) {
      const float* xr = px + r * d;
      const float* gr = dy + r * d;
      const float m = pmu[r], rs = prs[r];
      double sum_g = 0.0, sum_gx = 0.0;  // sums of dxhat and dxhat * xhat
      for (int64_t j = 0; j < d; ++j) {
        const float xhat = (xr[j] - m) * rs;
        const float g = pw ? gr[j] * pw[j] : gr[j];
        sum_g += g;
        sum_gx += g * xhat;
        partial[j] += gr[j] * xhat;
        partial[d + j] += gr[j];
      }
      if (!dx) return;
      const float mean_g = centred ? static_cast<float>(sum_g / d) : 0.0f;
      const float mean_gx = static_cast<float>(sum_gx / d);
      float* dxr = dx + r * d;
      for (int64_t j = 0; j < d; ++j) {
        const float xhat = (xr[j] - m) * rs;
        const float g = pw ? gr[j] * pw[j] : gr[j];
        dxr[j] += rs * (g - mean_g - xhat * mean_gx);
      }
    });
    for (int64_t j = 0; dw && j < d; ++j) dw[j] += dwb[j];
    for (int64_t j = 0; db && j < d; ++j) db[j] += dwb[d + j];
  });
  return out;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  if (on_cuda("layer_norm", {&x, &weight, &bias}))
    return cuda_op(&CudaBackend::layer_norm, "layer_norm")(x, weight, bias, eps);
  return normalize_rows(x, weight, bias, eps, true);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  if (on_cuda("rms_norm", {&x, &weight})) return cuda_op(&CudaBackend::rms_norm, "rms_norm")(x, weight, eps);
  return normalize_rows(x, weight, Tensor(), eps, false);
}

}  // namespace vdit
