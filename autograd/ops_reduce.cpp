// Sums and means over axes, and the mean-squared-error loss.
#include <algorithm>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"
#include "autograd/parallel.h"
#include "autograd/strided.h"

namespace vdit {

namespace {

// sum(x) * factor over `axes`; mean is the same with factor 1/count.
Tensor scaled_sum(const Tensor& x_in, const std::vector<int>& axes, bool keepdim, bool average) {
  const char* name = average ? "mean" : "sum";
  if (on_cuda(name, {&x_in})) return cuda_op(&CudaBackend::sum, name)(x_in, axes, keepdim, average);
  const Tensor x = x_in.to_f32();
  const ReducedShape shapes = reduced_shape(x.shape(), axes, keepdim);
  const Shape kept = shapes.kept;
  const float factor = average ? 1.0f / static_cast<float>(std::max<int64_t>(shapes.count, 1)) : 1.0f;
  Tensor out = Tensor::zeros(shapes.out);
  reduce_into(out.data(), kept, x.data(), x.shape(), factor);
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  const Shape in_shape = x.shape();
  Tape::record([go, gx, in_shape, kept, factor] {
    if (const float* dy = arrived(go)) broadcast_into(gx->buffer(), in_shape, dy, kept, factor);
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return scaled_sum(x, axes, keepdim, false);
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return scaled_sum(x, axes, keepdim, true);
}

Tensor sum_all(const Tensor& x) {
  std::vector<int> axes(x.ndim());
  for (int i = 0; i < x.ndim(); ++i) axes[i] = i;
  return scaled_sum(x, axes, false, false);
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  VDIT_CHECK(prediction.shape() == target.shape(),
             "mse_loss: prediction " << to_string(prediction.shape()) << " and target "
                                     << to_string(target.shape()) << " differ");
  if (on_cuda("mse_loss", {&prediction, &target}))
    return cuda_op(&CudaBackend::mse_loss, "mse_loss")(prediction, target);
  const Tensor p = prediction.to_f32(), t = target.to_f32();
  const float* pp = p.data();
  const float* pt = t.data();
  const int64_t n = p.numel();
  const double total = deterministic_sum(n, [&](int64_t i) {
    const double d = static_cast<double>(pp[i]) - pt[i];
    return d * d;
  });
  Tensor out = Tensor::full({}, static_cast<float>(total / static_cast<double>(n)));
  if (!needs_grad({&prediction, &target})) return out;
  GradRef go = Tape::output(out), gp = prediction.grad_ref(), gt = target.grad_ref();
  Tape::record([go, gp, gt, p, t, n] {
    const float* dy = arrived(go);
    if (!dy) return;
    const float c = 2.0f * dy[0] / static_cast<float>(n);
    const float* pp = p.data();
    const float* pt = t.data();
    float* dp = gp ? gp->buffer() : nullptr;
    float* dt = gt ? gt->buffer() : nullptr;
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float g = c * (pp[i] - pt[i]);
      if (dp) dp[i] += g;
      if (dt) dt[i] -= g;
    }
  });
  return out;
}

}  // namespace vdit
