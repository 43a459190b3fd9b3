#pragma once
// Every differentiable op: a forward that records its backward on the tape when an input
// requires a gradient. Inputs may be bf16 (frozen storage); they are widened where read.
// Each op's backward sits beside its forward in the op's .cpp file.
#include <vector>

#include "autograd/tape.h"
#include "autograd/tensor.h"

namespace vdit {

// --- linear algebra (ops_linear.cpp) ---
// y = x W^T + b; x [..., in], weight [out, in] (float32 or bf16), bias [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
// [..., m, k] x [..., k, n] with equal batch axes (or a 2-D right operand shared by all).
Tensor matmul(const Tensor& a, const Tensor& b);

// --- element-wise with NumPy broadcasting (ops_elementwise.cpp) ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float factor);
Tensor add_scalar(const Tensor& x, float value);
Tensor square(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu_tanh(const Tensor& x);  // GELU, tanh approximation

// --- shape and movement (ops_shape.cpp) ---
Tensor reshape(const Tensor& x, Shape shape);  // one axis may be -1; shares storage
Tensor permute(const Tensor& x, const std::vector<int>& axes);
Tensor transpose(const Tensor& x, int axis_a, int axis_b);
Tensor slice(const Tensor& x, int axis, int64_t begin, int64_t end);
Tensor concat(const std::vector<Tensor>& parts, int axis);
std::vector<Tensor> split(const Tensor& x, int axis, const std::vector<int64_t>& sizes);
std::vector<Tensor> chunk(const Tensor& x, int axis, int chunks);

// --- reductions and losses (ops_reduce.cpp) ---
Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim = false);
Tensor sum_all(const Tensor& x);
Tensor mse_loss(const Tensor& prediction, const Tensor& target);  // mean squared error, scalar

// --- normalisation over the last axis (ops_norm.cpp) ---
Tensor softmax(const Tensor& x);
// weight/bias [last] or undefined (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);

// --- rotary embedding (ops_rope.cpp) ---
// x [..., N, H, hd]: each head's adjacent pairs (x[2j], x[2j+1]) of token n rotate by the
// angle whose cosine and sine are cos[n, j], sin[n, j] (tables [N, hd/2], no gradient).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin);

// --- fused attention (attention.cpp) ---
struct AttentionOptions {
  Tensor temperature;  // [H], logits divided by it per head; may require a gradient
  Tensor key_mask;     // [B, Nk]; keys where it is 0 get no mass
  float scale = 0.0f;  // 0 means 1 / sqrt(head_dim)
};
// softmax(q k^T * scale / temperature) v per batch and head, streamed over key blocks.
// q [B, Nq, H, hd], k and v [B, Nk, H, hd]; returns [B, Nq, H, hd].
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionOptions& options = {});

}  // namespace vdit
