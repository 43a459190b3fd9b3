// Rotary position embedding on the device, the twin of autograd/ops_rope.cpp: pair j of each
// head of token n, (x[2j], x[2j+1]), rotates by the angle whose cosine and sine are the fp32
// tables' cos[n, j], sin[n, j]; the backward is the rotation by the negative angle.
#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/register.h"
#include "autograd/grad_accumulate.h"

namespace vdit::cuda {

namespace {

// One thread per pair; `sign` -1 rotates backwards. dst (+)= the rotated src.
template <class TS, class TD>
__global__ void rotate_pairs_kernel(const TS* src, TD* dst, const float* cos, const float* sin, int64_t total_pairs,
                                    int64_t tokens, int64_t heads, int64_t pairs, float sign, bool accumulate) {
  for (int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; p < total_pairs; p += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = p % pairs, n = (p / (pairs * heads)) % tokens;
    const float c = cos[n * pairs + j], s = sign * sin[n * pairs + j];
    const float x0 = load(src, 2 * p), x1 = load(src, 2 * p + 1);
    float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
    if (accumulate) {
      y0 += load(dst, 2 * p);
      y1 += load(dst, 2 * p + 1);
    }
    store(dst, 2 * p, y0);
    store(dst, 2 * p + 1, y1);
  }
}

Tensor rope_op(const Tensor& x, const Tensor& cos_in, const Tensor& sin_in) {
  VDIT_CHECK(x.ndim() >= 3, "rope input must be [..., N, H, hd], got " << to_string(x.shape()));
  const int64_t tokens = x.size(-3), heads = x.size(-2), head_dim = x.size(-1);
  VDIT_CHECK(head_dim % 2 == 0, "rope needs an even head_dim, got " << head_dim);
  const Shape table{tokens, head_dim / 2};
  VDIT_CHECK(cos_in.shape() == table && sin_in.shape() == table,
             "rope tables " << to_string(cos_in.shape()) << " / " << to_string(sin_in.shape()) << " do not match "
                            << to_string(table) << " for input " << to_string(x.shape()));
  VDIT_CHECK(!cos_in.requires_grad() && !sin_in.requires_grad(), "rope tables take no gradient");
  const Tensor cos = cos_in.to_f32(), sin = sin_in.to_f32();
  const int64_t pairs = head_dim / 2, total_pairs = x.numel() / 2;
  const int device = x.device().index;
  Tensor result = Tensor::empty(x.shape(), output_dtype({&x, &cos_in, &sin_in}), x.device());
  if (total_pairs > 0) {
    DeviceGuard guard(device);
    with_dtype(x.dtype(), [&](auto ts) {
      with_dtype(result.dtype(), [&](auto td) {
        rotate_pairs_kernel<<<blocks_for(total_pairs), kThreads, 0, stream(device)>>>(
            in<VDIT_T(ts)>(x), out<VDIT_T(td)>(result), in<float>(cos), in<float>(sin), total_pairs, tokens, heads,
            pairs, 1.0f, false);
      });
    });
    VDIT_CUDA_CHECK_LAUNCH();
  }
  if (!needs_grad({&x})) return result;
  GradRef go = Tape::output(result), gx = x.grad_ref();
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy || total_pairs == 0) return;
    DeviceGuard guard(device);
    bool fresh = false;  // a fresh buffer is written, not zero-filled and added to
    float* dx = gx->buffer_for_write(&fresh);
    rotate_pairs_kernel<<<blocks_for(total_pairs), kThreads, 0, stream(device)>>>(
        dy, dx, in<float>(cos), in<float>(sin), total_pairs, tokens, heads, pairs, -1.0f, !fresh);
    VDIT_CUDA_CHECK_LAUNCH();
  });
  return result;
}

}  // namespace

void register_rope(CudaBackend& backend) { backend.rope = rope_op; }

}  // namespace vdit::cuda
