// The GEMM ops on CUDA: linear (y = x W^T + b, the bias fused in cuBLASLt's epilogue) and
// batched matmul, twins of autograd/ops_linear.cpp. Operands enter the tensor cores as bf16
// (fp32 inputs are narrowed, a trainable fp32 weight gets a bf16 copy per call); accumulation is
// fp32. Backward narrows dy to bf16 once (summing the bias gradient in the same pass) and writes
// fp32 gradients straight from the GEMMs (beta 0 into a fresh buffer, 1 to accumulate), as the
// CPU op does.
#include <cuda_bf16.h>

#include "autograd/cuda/cublaslt.h"
#include "autograd/cuda/ops_linear_kernels.h"
#include "autograd/cuda/register.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"

namespace vdit::cuda {

namespace {

const __nv_bfloat16* bf16(const Tensor& t) { return static_cast<const __nv_bfloat16*>(t.storage()); }

// The precision rule: bf16 out when any floating input is bf16, fp32 only when all are fp32.
DType output_dtype(std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs)
    if (t->defined() && t->dtype() == DType::BF16) return DType::BF16;
  return DType::F32;
}

// A bf16 copy of a gradient that arrived as fp32 (the GEMMs' operand), viewed as [rows, cols];
// with `bias`, the bias's gradient (column sums) from the same pass.
Tensor narrowed(const float* dy, const Shape& shape, int device, const GradRef& bias = nullptr) {
  Tensor out = Tensor::empty(shape, DType::BF16, Device::cuda(device));
  const int64_t cols = shape.empty() ? 1 : shape.back(), rows = cols ? out.numel() / cols : 0;
  bool fresh = false;
  float* sums = bias ? bias->buffer_for_write(&fresh) : nullptr;
  narrow_with_column_sums(dy, rows, cols, static_cast<__nv_bfloat16*>(out.storage()), sums, !fresh, device);
  return out;
}

Tensor linear(const Tensor& x_in, const Tensor& weight, const Tensor& bias) {
  const int device = x_in.device().index;
  const int64_t out_features = weight.size(0), in_features = weight.size(1);
  const int64_t rows = x_in.numel() / in_features;
  Shape out_shape = x_in.shape();
  out_shape.back() = out_features;
  const DType out_dtype = output_dtype({&x_in, &weight, &bias});
  Tensor out = Tensor::empty(out_shape, out_dtype, x_in.device());
  const Tensor x = x_in.to_bf16(), w = weight.to_bf16();
  // The epilogue's bias has the output's dtype (cuBLASLt's rule for bf16 GEMMs).
  const Tensor b = !bias.defined() ? Tensor() : out_dtype == DType::BF16 ? bias.to_bf16() : bias.to_f32();
  GemmArgs g;
  g.trans_b = true;
  g.m = rows, g.n = out_features, g.k = in_features;
  g.a = bf16(x), g.lda = in_features;
  g.b = bf16(w), g.ldb = in_features;
  g.c = out.storage(), g.c_dtype = out_dtype, g.ldc = out_features;
  g.bias = b.defined() ? b.storage() : nullptr;
  gemm(g, device);
  if (!needs_grad({&x_in, &weight, &bias})) return out;

  GradRef go = Tape::output(out), gx = x_in.grad_ref(), gw = weight.grad_ref();
  GradRef gb = bias.defined() ? bias.grad_ref() : nullptr;
  // dx needs W, dW needs x: each is kept (in bf16) only when its partner needs a gradient.
  const Tensor saved_x = gw ? x : Tensor(), saved_w = gx ? w : Tensor();
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy) return;
    const Tensor dy16 = narrowed(dy, {rows, out_features}, device, gb);
    bool fresh = false;
    if (gx) {  // dx [rows, in] = dy W
      GemmArgs d;
      d.m = rows, d.n = in_features, d.k = out_features;
      d.a = bf16(dy16), d.lda = out_features;
      d.b = bf16(saved_w), d.ldb = in_features;
      d.c = gx->buffer_for_write(&fresh), d.c_dtype = DType::F32, d.ldc = in_features;
      d.beta = fresh ? 0.0f : 1.0f;
      gemm(d, device);
    }
    if (gw) {  // dW [out, in] = dy^T x
      GemmArgs d;
      d.trans_a = true;
      d.m = out_features, d.n = in_features, d.k = rows;
      d.a = bf16(dy16), d.lda = out_features;
      d.b = bf16(saved_x), d.ldb = in_features;
      d.c = gw->buffer_for_write(&fresh), d.c_dtype = DType::F32, d.ldc = in_features;
      d.beta = fresh ? 0.0f : 1.0f;
      gemm(d, device);
    }
  });
  return out;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const int device = a_in.device().index;
  const int64_t m = a_in.size(-2), k = a_in.size(-1), n = b_in.size(-1);
  VDIT_CHECK(b_in.size(-2) == k, "matmul inner sizes differ: " << to_string(a_in.shape()) << " x "
                                                               << to_string(b_in.shape()));
  const Shape batch_shape(a_in.shape().begin(), a_in.shape().end() - 2);
  const bool shared_b = b_in.ndim() == 2;
  VDIT_CHECK(shared_b || Shape(b_in.shape().begin(), b_in.shape().end() - 2) == batch_shape,
             "matmul batch axes differ: " << to_string(a_in.shape()) << " x " << to_string(b_in.shape()));
  const int64_t batches = numel(batch_shape);
  // A shared B makes the batch one GEMM over all batches' rows of A (contiguous): [batches m, k] x [k, n].
  const int64_t rows = shared_b ? batches * m : m, gemms = shared_b ? 1 : batches;
  Shape out_shape = batch_shape;
  out_shape.push_back(m);
  out_shape.push_back(n);
  const DType out_dtype = output_dtype({&a_in, &b_in});
  Tensor out = Tensor::empty(out_shape, out_dtype, a_in.device());
  const Tensor a = a_in.to_bf16(), b = b_in.to_bf16();
  GemmArgs g;
  g.m = rows, g.n = n, g.k = k;
  g.a = bf16(a), g.lda = k, g.stride_a = m * k;
  g.b = bf16(b), g.ldb = n, g.stride_b = k * n;
  g.c = out.storage(), g.c_dtype = out_dtype, g.ldc = n, g.stride_c = m * n;
  g.batch = gemms;
  gemm(g, device);
  if (!needs_grad({&a_in, &b_in})) return out;

  GradRef go = Tape::output(out), ga = a_in.grad_ref(), gb = b_in.grad_ref();
  const Tensor saved_a = gb ? a : Tensor(), saved_b = ga ? b : Tensor();
  Tape::record([=] {
    const float* dy = arrived(go);
    if (!dy) return;
    const Tensor dy16 = narrowed(dy, out_shape, device);
    bool fresh = false;
    if (ga) {  // dA = dY B^T
      GemmArgs d;
      d.trans_b = true;
      d.m = rows, d.n = k, d.k = n;
      d.a = bf16(dy16), d.lda = n, d.stride_a = m * n;
      d.b = bf16(saved_b), d.ldb = n, d.stride_b = k * n;
      d.c = ga->buffer_for_write(&fresh), d.c_dtype = DType::F32, d.ldc = k, d.stride_c = m * k;
      d.beta = fresh ? 0.0f : 1.0f;
      d.batch = gemms;
      gemm(d, device);
    }
    if (gb) {  // dB = A^T dY; for a shared B the sum over the batch is the inner sum of one GEMM
      GemmArgs d;
      d.trans_a = true;
      d.m = k, d.n = n, d.k = rows;
      d.a = bf16(saved_a), d.lda = k, d.stride_a = m * k;
      d.b = bf16(dy16), d.ldb = n, d.stride_b = m * n;
      d.c = gb->buffer_for_write(&fresh), d.c_dtype = DType::F32, d.ldc = n, d.stride_c = k * n;
      d.beta = fresh ? 0.0f : 1.0f;
      d.batch = gemms;
      gemm(d, device);
    }
  });
  return out;
}

}  // namespace

void register_linear(CudaBackend& b) {
  b.linear = linear;
  b.matmul = matmul;
}

}  // namespace vdit::cuda
