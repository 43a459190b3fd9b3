// Element-wise ops. Binary ones broadcast (NumPy rules) and reduce their gradients back to
// each input's shape; unary ones are a value function and its derivative.
#include <cmath>
#include <type_traits>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/fast_math.h"
#include "autograd/grad_accumulate.h"
#include "autograd/ops.h"
#include "autograd/strided.h"

namespace vdit {

namespace {

// --- binary ---

struct AddOp {
  static constexpr BinaryOp kKind = BinaryOp::Add;
  static constexpr const char* kName = "add";
  static float f(float a, float b) { return a + b; }
};
struct SubOp {
  static constexpr BinaryOp kKind = BinaryOp::Sub;
  static constexpr const char* kName = "sub";
  static float f(float a, float b) { return a - b; }
};
struct MulOp {
  static constexpr BinaryOp kKind = BinaryOp::Mul;
  static constexpr const char* kName = "mul";
  static float f(float a, float b) { return a * b; }
  static float da(float a, float b, float dy) { return dy * b; }
  static float db(float a, float b, float dy) { return dy * a; }
};
struct DivOp {
  static constexpr BinaryOp kKind = BinaryOp::Div;
  static constexpr const char* kName = "div";
  static float f(float a, float b) { return a / b; }
  static float da(float a, float b, float dy) { return dy / b; }
  static float db(float a, float b, float dy) { return -dy * a / (b * b); }
};

// fn(i, a_i, b_i) for every flat index i of the broadcast shape. A run's input strides are 0
// or 1 in the common cases, which get their own loops so that the compiler vectorises them.
template <class Fn>
void broadcast_for_each(const Shape& shape, const float* pa, const Shape& a_shape,
                        const float* pb, const Shape& b_shape, Fn fn) {
  StridedLoop loop(shape, {contiguous_strides(shape), broadcast_strides(a_shape, shape),
                           broadcast_strides(b_shape, shape)});
  loop.for_each_run(true, [&](const StridedLoop::Offsets& off, int64_t n,
                              const StridedLoop::Offsets& st) {
    const int64_t o = off[0];
    const float* x = pa + off[1];
    const float* y = pb + off[2];
    if (st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) fn(o + i, x[i], y[i]);
    } else if (st[1] == 1 && st[2] == 0) {
      const float yv = *y;
      for (int64_t i = 0; i < n; ++i) fn(o + i, x[i], yv);
    } else if (st[1] == 0 && st[2] == 1) {
      const float xv = *x;
      for (int64_t i = 0; i < n; ++i) fn(o + i, xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) fn(o + i, x[i * st[1]], y[i * st[2]]);
    }
  });
}

template <class Op>
Tensor binary(const Tensor& a_in, const Tensor& b_in) {
  if (on_cuda(Op::kName, {&a_in, &b_in})) return cuda_op(&CudaBackend::binary, Op::kName)(Op::kKind, a_in, b_in);
  const Tensor a = a_in.to_f32(), b = b_in.to_f32();
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape);
  float* po = out.data();
  broadcast_for_each(shape, a.data(), a.shape(), b.data(), b.shape(),
                     [po](int64_t i, float x, float y) { po[i] = Op::f(x, y); });
  if (!needs_grad({&a_in, &b_in})) return out;

  GradRef go = Tape::output(out), ga = a_in.grad_ref(), gb = b_in.grad_ref();
  if constexpr (std::is_same_v<Op, AddOp> || std::is_same_v<Op, SubOp>) {
    // Linear in both inputs: the incoming gradient is reduced as it is, nothing is saved.
    const float sign_b = std::is_same_v<Op, SubOp> ? -1.0f : 1.0f;
    Tape::record([go, ga, gb, shape, sign_b] {
      const float* dy = arrived(go);
      if (!dy) return;
      accumulate_grad(ga, shape, dy);
      accumulate_grad(gb, shape, dy, sign_b);
    });
  } else {
    // d/da reads only b (for mul and div), so a is kept only when b needs a gradient; an
    // unkept a is read as a broadcast zero.
    const Tensor saved_a = gb ? a : Tensor::zeros({});
    Tape::record([go, ga, gb, shape, saved_a, b] {
      const float* dy = arrived(go);
      if (!dy) return;
      Tensor partial = Tensor::empty(shape);
      float* pp = partial.data();
      if (ga) {
        broadcast_for_each(shape, saved_a.data(), saved_a.shape(), b.data(), b.shape(),
                           [pp, dy](int64_t i, float x, float y) { pp[i] = Op::da(x, y, dy[i]); });
        accumulate_grad(ga, shape, pp);
      }
      if (gb) {
        broadcast_for_each(shape, saved_a.data(), saved_a.shape(), b.data(), b.shape(),
                           [pp, dy](int64_t i, float x, float y) { pp[i] = Op::db(x, y, dy[i]); });
        accumulate_grad(gb, shape, pp);
      }
    });
  }
  return out;
}

// --- unary: y = f(x), dx = dy * f'(x, y); kSavesX / kSavesY say what the derivative reads ---

struct SquareOp {
  static constexpr UnaryOp kKind = UnaryOp::Square;
  static constexpr const char* kName = "square";
  static constexpr bool kSavesX = true, kSavesY = false;
  static float f(float x) { return x * x; }
  static float df(float x, float) { return 2.0f * x; }
};
struct ExpOp {
  static constexpr UnaryOp kKind = UnaryOp::Exp;
  static constexpr const char* kName = "exp";
  static constexpr bool kSavesX = false, kSavesY = true;
  static float f(float x) { return std::exp(x); }
  static float df(float, float y) { return y; }
};
struct LogOp {
  static constexpr UnaryOp kKind = UnaryOp::Log;
  static constexpr const char* kName = "log";
  static constexpr bool kSavesX = true, kSavesY = false;
  static float f(float x) { return std::log(x); }
  static float df(float x, float) { return 1.0f / x; }
};
struct TanhOp {
  static constexpr UnaryOp kKind = UnaryOp::Tanh;
  static constexpr const char* kName = "tanh";
  static constexpr bool kSavesX = false, kSavesY = true;
  static float f(float x) { return std::tanh(x); }
  static float df(float, float y) { return 1.0f - y * y; }
};
// 1 / (1 + e^-x) with the vectorisable exp: SiLU and GELU run over every FFN activation.
inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

struct SiluOp {
  static constexpr UnaryOp kKind = UnaryOp::Silu;
  static constexpr const char* kName = "silu";
  static constexpr bool kSavesX = true, kSavesY = false;
  static float f(float x) { return x * sigmoid(x); }
  static float df(float x, float) {
    float s = sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
  }
};
struct GeluTanhOp {
  static constexpr UnaryOp kKind = UnaryOp::GeluTanh;
  static constexpr const char* kName = "gelu_tanh";
  static constexpr bool kSavesX = true, kSavesY = false;
  static constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  static constexpr float kA = 0.044715f;
  // 0.5 (1 + tanh u) = sigmoid(2u), u = kC (x + kA x^3).
  static float f(float x) { return x * sigmoid(2.0f * kC * (x + kA * x * x * x)); }
  static float df(float x, float) {
    const float s = sigmoid(2.0f * kC * (x + kA * x * x * x));  // t = tanh u = 2s - 1, 1 - t^2 = 4 s (1 - s)
    return s + 2.0f * x * s * (1.0f - s) * kC * (1.0f + 3.0f * kA * x * x);
  }
};

template <class Op>
Tensor unary(const Tensor& x_in) {
  if (on_cuda(Op::kName, {&x_in})) return cuda_op(&CudaBackend::unary, Op::kName)(Op::kKind, x_in);
  const Tensor x = x_in.to_f32();
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = out.data();
  const int64_t n = x.numel();
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = Op::f(px[i]);
  if (!needs_grad({&x_in})) return out;

  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Tensor saved_x = Op::kSavesX ? x : Tensor();
  Tensor saved_y = Op::kSavesY ? out.detach() : Tensor();
  Tape::record([go, gx, saved_x, saved_y, n] {
    const float* dy = arrived(go);
    if (!dy || !gx) return;
    const float* sx = saved_x.defined() ? saved_x.data() : nullptr;
    const float* sy = saved_y.defined() ? saved_y.data() : nullptr;
    float* dx = gx->buffer();
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
    for (int64_t i = 0; i < n; ++i)
      dx[i] += dy[i] * Op::df(sx ? sx[i] : 0.0f, sy ? sy[i] : 0.0f);
  });
  return out;
}

// y = factor * x + offset: the affine maps `scale` and `add_scalar` share.
Tensor affine(const Tensor& x_in, float factor, float offset) {
  if (on_cuda("scale", {&x_in})) return cuda_op(&CudaBackend::affine, "scale")(x_in, factor, offset);
  const Tensor x = x_in.to_f32();
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = out.data();
  const int64_t n = x.numel();
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = factor * px[i] + offset;
  if (!needs_grad({&x_in})) return out;
  GradRef go = Tape::output(out), gx = x_in.grad_ref();
  Shape shape = x.shape();
  Tape::record([go, gx, shape, factor] {
    if (const float* dy = arrived(go)) accumulate_grad(gx, shape, dy, factor);
  });
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary<AddOp>(a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary<SubOp>(a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary<MulOp>(a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary<DivOp>(a, b); }
Tensor scale(const Tensor& x, float factor) { return affine(x, factor, 0.0f); }
Tensor add_scalar(const Tensor& x, float value) { return affine(x, 1.0f, value); }
Tensor square(const Tensor& x) { return unary<SquareOp>(x); }
Tensor exp(const Tensor& x) { return unary<ExpOp>(x); }
Tensor log(const Tensor& x) { return unary<LogOp>(x); }
Tensor tanh(const Tensor& x) { return unary<TanhOp>(x); }
Tensor silu(const Tensor& x) { return unary<SiluOp>(x); }
Tensor gelu_tanh(const Tensor& x) { return unary<GeluTanhOp>(x); }

}  // namespace vdit
