// Element-wise ops on the device, the twins of autograd/ops_elementwise.cpp: binary ones with
// NumPy broadcasting (gradients reduced back to each input's shape in a fixed order), unary
// ones (derivatives computed from the saved input, in fp32), and the affine map. Contiguous
// runs whose length is a multiple of 8 move 8 elements (16 bytes of bf16) per load.
#include <algorithm>
#include <type_traits>

#include "autograd/cuda/device_math.cuh"
#include "autograd/cuda/kernel_support.cuh"
#include "autograd/cuda/register.h"
#include "autograd/grad_accumulate.h"

namespace vdit::cuda {

namespace {

// --- binary ---

template <BinaryOp kOp>
__device__ __forceinline__ float binary_value(float a, float b) {
  if constexpr (kOp == BinaryOp::Add) return a + b;
  if constexpr (kOp == BinaryOp::Sub) return a - b;
  if constexpr (kOp == BinaryOp::Mul) return a * b;
  return a / b;
}

// Operands 0 (the output, contiguous), 1 (a) and 2 (b) of the broadcast index space.
template <BinaryOp kOp, class TA, class TB, class TO>
__global__ void binary_kernel(const TA* a, const TB* b, TO* o, Indexer<3> ix, int64_t n) {
  int64_t off[3];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    ix.offsets(i, off);
    store(o, i, binary_value<kOp>(load(a, off[1]), load(b, off[2])));
  }
}

// Eight outputs per step: the innermost axis has a multiple of 8 elements, along which each
// input either steps by one element (a vector load) or is broadcast (one load).
template <class T>
__device__ __forceinline__ void load8_or_broadcast(const T* p, bool steps, float (&v)[8]) {
  if (steps) {
    load8(p, v);
  } else {
    const float x = load(p, 0);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = x;
  }
}

template <BinaryOp kOp, class TA, class TB, class TO>
__global__ void binary_vec8_kernel(const TA* a, const TB* b, TO* o, Indexer<3> ix, int64_t groups, bool a_steps,
                                   bool b_steps) {
  int64_t off[3];
  for (int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    ix.offsets(g * 8, off);
    float va[8], vb[8], vo[8];
    load8_or_broadcast(a + off[1], a_steps, va);
    load8_or_broadcast(b + off[2], b_steps, vb);
#pragma unroll
    for (int k = 0; k < 8; ++k) vo[k] = binary_value<kOp>(va[k], vb[k]);
    store8(o + g * 8, vo);
  }
}

// The gradient of a (kForA) or b for mul and div at flat index i of the broadcast shape.
template <BinaryOp kOp, bool kForA, class TA, class TB>
__device__ __forceinline__ float binary_grad_at(const TA* a, const TB* b, float dy, const Indexer<3>& ix, int64_t i) {
  int64_t off[3];
  ix.offsets(i, off);
  const float y = load(b, off[2]);
  if constexpr (kForA) return kOp == BinaryOp::Mul ? dy * y : dy / y;
  const float x = load(a, off[1]);
  return kOp == BinaryOp::Mul ? dy * x : -dy * x / (y * y);
}

// That gradient into dst over the broadcast shape.
template <BinaryOp kOp, bool kForA, class TA, class TB>
__global__ void binary_grad_kernel(const TA* a, const TB* b, const float* dy, float* dst, Indexer<3> ix, int64_t n,
                                   bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = binary_grad_at<kOp, kForA>(a, b, dy[i], ix, i);
    dst[i] = accumulate ? dst[i] + g : g;
  }
}

// For an input broadcast along leading axes only (a [1, 1, d] scale against [B, N, d]): the
// broadcast shape is rows of `count`, and thread j of block (x, y) sums that gradient over the
// rows of chunk y at column j = x blockDim + threadIdx, in row order (sum_partials adds the
// chunks in order), with no temporary of the broadcast shape.
template <BinaryOp kOp, bool kForA, class TA, class TB>
__global__ void binary_grad_rows_kernel(const TA* a, const TB* b, const float* dy, Indexer<3> ix, int64_t rows,
                                        int64_t count, int64_t chunk, float* partials) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= count) return;
  const int64_t begin = blockIdx.y * chunk, end = min(rows, begin + chunk);
  float s = 0.0f;
  for (int64_t r = begin; r < end; ++r) s += binary_grad_at<kOp, kForA>(a, b, dy[r * count + j], ix, r * count + j);
  partials[blockIdx.y * count + j] = s;
}

// The length of the rows when `input` is `shape` broadcast along leading axes only (its
// trailing axes are shape's, every axis before them 1), else 0.
int64_t broadcast_row_length(const Shape& input, const Shape& shape) {
  Shape padded(shape.size() - input.size(), 1);
  padded.insert(padded.end(), input.begin(), input.end());
  size_t k = shape.size();
  while (k > 0 && padded[k - 1] == shape[k - 1]) --k;
  for (size_t i = 0; i < k; ++i)
    if (padded[i] != 1) return 0;
  return numel(input);
}

template <class Fn>
void with_binary_op(BinaryOp op, Fn&& fn) {
  switch (op) {
    case BinaryOp::Add: return fn(std::integral_constant<BinaryOp, BinaryOp::Add>{});
    case BinaryOp::Sub: return fn(std::integral_constant<BinaryOp, BinaryOp::Sub>{});
    case BinaryOp::Mul: return fn(std::integral_constant<BinaryOp, BinaryOp::Mul>{});
    case BinaryOp::Div: return fn(std::integral_constant<BinaryOp, BinaryOp::Div>{});
  }
}

Indexer<3> broadcast_indexer(const Shape& shape, const Shape& a_shape, const Shape& b_shape) {
  return make_indexer<3>(shape, {contiguous_strides(shape), broadcast_strides(a_shape, shape),
                                 broadcast_strides(b_shape, shape)});
}

template <BinaryOp kOp, class TA, class TB, class TO>
void launch_binary(const TA* a, const TB* b, TO* o, const Indexer<3>& ix, int64_t n, cudaStream_t s) {
  const bool a_steps = ix.inner_stride(1) == 1, b_steps = ix.inner_stride(2) == 1;
  const bool vectorise = ix.inner() % 8 == 0 && (a_steps || ix.inner_stride(1) == 0) &&
                         (b_steps || ix.inner_stride(2) == 0) && aligned16(a) && aligned16(b) && aligned16(o);
  if (vectorise)
    binary_vec8_kernel<kOp><<<blocks_for(n / 8), kThreads, 0, s>>>(a, b, o, ix, n / 8, a_steps, b_steps);
  else
    binary_kernel<kOp><<<blocks_for(n), kThreads, 0, s>>>(a, b, o, ix, n);
  VDIT_CUDA_CHECK_LAUNCH();
}

// Where an element-wise backward writes its input's gradient, and whether it overwrites (else
// adds to) it: dy's own buffer, moved from the output's slot `output` (null: not this time)
// when the input has no gradient yet, rewritten in place element by element (dy is read nowhere
// after this op's backward; no second buffer of dy's size is allocated); else the input's
// buffer, overwritten when fresh, not zero-filled and added to.
float* grad_target(GradSlot& slot, GradSlot* output, bool* overwrite) {
  if (output && take_grad(slot, *output)) {
    *overwrite = true;
    return slot.buffer();
  }
  return slot.buffer_for_write(overwrite);
}

// Adds the gradient of a (kForA) or b into `slot`, through a temporary of the broadcast shape
// when that input was broadcast; `output` as for grad_target, when this is dy's last reader.
template <BinaryOp kOp, bool kForA>
void binary_grad(const GradRef& slot, const Tensor& a, const Tensor& b, const Shape& shape, const float* dy,
                 GradSlot* output, int device) {
  const int64_t n = numel(shape);
  const bool direct = slot->shape == shape;
  const Indexer<3> ix = broadcast_indexer(shape, a.defined() ? a.shape() : shape, b.shape());
  const DType a_dtype = a.defined() ? a.dtype() : DType::F32;
  const int64_t row = direct || n == 0 ? 0 : broadcast_row_length(slot->shape, shape);
  if (row > 0) {
    const int64_t rows = n / row;
    // Chunks of rows depend on the shapes only, so the order of the sums is fixed.
    const int64_t chunk = std::max<int64_t>(64, (rows + 65534) / 65535), chunks = (rows + chunk - 1) / chunk;
    const Tensor partials = Tensor::empty({chunks * row}, DType::F32, Device::cuda(device));
    const dim3 grid(static_cast<unsigned>((row + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
    with_dtype(a_dtype, [&](auto ta) {
      with_dtype(b.dtype(), [&](auto tb) {
        binary_grad_rows_kernel<kOp, kForA><<<grid, kThreads, 0, stream(device)>>>(
            a.defined() ? in<VDIT_T(ta)>(a) : nullptr, in<VDIT_T(tb)>(b), dy, ix, rows, row, chunk, out<float>(partials));
      });
    });
    VDIT_CUDA_CHECK_LAUNCH();
    bool fresh = false;
    float* g = slot->buffer_for_write(&fresh);
    sum_partials(in<float>(partials), chunks, row, g, 1.0f, !fresh, device);
    return;
  }
  const Tensor temp = direct ? Tensor() : Tensor::empty(shape, DType::F32, Device::cuda(device));
  bool fresh = false;
  float* dst = direct ? grad_target(*slot, output, &fresh) : out<float>(temp);
  with_dtype(a_dtype, [&](auto ta) {
    with_dtype(b.dtype(), [&](auto tb) {
      binary_grad_kernel<kOp, kForA><<<blocks_for(n), kThreads, 0, stream(device)>>>(
          a.defined() ? in<VDIT_T(ta)>(a) : nullptr, in<VDIT_T(tb)>(b), dy, dst, ix, n, direct && !fresh);
    });
  });
  VDIT_CUDA_CHECK_LAUNCH();
  if (!direct) {
    bool slot_fresh = false;
    float* g = slot->buffer_for_write(&slot_fresh);
    reduce_into(g, slot->shape, dst, shape, 1.0f, !slot_fresh, device);
  }
}

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  const int device = a.device().index;
  const int64_t n = numel(shape);
  Tensor result = Tensor::empty(shape, output_dtype({&a, &b}), a.device());
  if (n > 0) {
    DeviceGuard guard(device);
    const Indexer<3> ix = broadcast_indexer(shape, a.shape(), b.shape());
    with_binary_op(op, [&](auto kop) {
      with_dtype(a.dtype(), [&](auto ta) {
        with_dtype(b.dtype(), [&](auto tb) {
          using TA = VDIT_T(ta);
          using TB = VDIT_T(tb);
          using TO = std::conditional_t<std::is_same_v<TA, float> && std::is_same_v<TB, float>, float, __nv_bfloat16>;
          launch_binary<decltype(kop)::value>(in<TA>(a), in<TB>(b), out<TO>(result), ix, n, stream(device));
        });
      });
    });
  }
  if (!needs_grad({&a, &b})) return result;

  GradRef go = Tape::output(result), ga = a.grad_ref(), gb = b.grad_ref();
  if (op == BinaryOp::Add || op == BinaryOp::Sub) {
    // Linear in both inputs: the incoming gradient is reduced as it is, nothing is saved.
    const float sign_b = op == BinaryOp::Sub ? -1.0f : 1.0f;
    Tape::record([go, ga, gb, shape, sign_b, device] {
      const float* dy = arrived(go);
      if (!dy) return;
      // An input's first gradient, when it has the output's shape and sign, is dy itself: moved
      // into its slot, not copied, after the other input has read dy (ga and gb may be one slot).
      const bool a_moves = ga && ga->shape == shape;
      const bool b_moves = !a_moves && gb && gb->shape == shape && sign_b == 1.0f;
      GradRef first = a_moves ? gb : ga, last = a_moves ? ga : gb;
      const float first_sign = a_moves ? sign_b : 1.0f, last_sign = a_moves ? 1.0f : sign_b;
      accumulate_grad(first, shape, dy, first_sign, device);
      if (last && !((a_moves || b_moves) && take_grad(*last, *go))) accumulate_grad(last, shape, dy, last_sign, device);
    });
    return result;
  }
  // d/da reads only b, so a is kept only when b needs a gradient (as on the CPU).
  const Tensor saved_a = gb ? a.detach() : Tensor();
  const Tensor saved_b = b.detach();
  Tape::record([go, ga, gb, shape, saved_a, saved_b, op, device] {
    const float* dy = arrived(go);
    if (!dy) return;
    DeviceGuard guard(device);
    with_binary_op(op, [&](auto kop) {
      constexpr BinaryOp k = decltype(kop)::value;
      if constexpr (k == BinaryOp::Mul || k == BinaryOp::Div) {
        // The last of the two may rewrite dy in place: b's first when b alone was broadcast.
        GradSlot* take = go.get();
        if (ga && gb && gb->shape != shape) {
          binary_grad<k, false>(gb, saved_a, saved_b, shape, dy, nullptr, device);
          binary_grad<k, true>(ga, saved_a, saved_b, shape, dy, take, device);
          return;
        }
        if (ga) binary_grad<k, true>(ga, saved_a, saved_b, shape, dy, gb ? nullptr : take, device);
        if (gb) binary_grad<k, false>(gb, saved_a, saved_b, shape, dy, take, device);
      }
    });
  });
  return result;
}

// --- unary and affine: y = f(x) in x's dtype, dx += dy f'(x) ---

template <UnaryOp kOp>
struct UnaryFn {
  __device__ __forceinline__ float operator()(float x) const {
    if constexpr (kOp == UnaryOp::Square) return x * x;
    if constexpr (kOp == UnaryOp::Exp) return expf(x);
    if constexpr (kOp == UnaryOp::Log) return logf(x);
    if constexpr (kOp == UnaryOp::Tanh) return tanhf(x);
    if constexpr (kOp == UnaryOp::Silu) return silu(x);
    return gelu_tanh(x);
  }
  __device__ __forceinline__ float derivative(float x) const {
    if constexpr (kOp == UnaryOp::Square) return 2.0f * x;
    if constexpr (kOp == UnaryOp::Exp) return expf(x);
    if constexpr (kOp == UnaryOp::Log) return 1.0f / x;
    if constexpr (kOp == UnaryOp::Tanh) {
      const float t = tanhf(x);
      return 1.0f - t * t;
    }
    if constexpr (kOp == UnaryOp::Silu) return silu_grad(x);
    return gelu_tanh_grad(x);
  }
};

struct AffineFn {
  float factor, offset;
  __device__ __forceinline__ float operator()(float x) const { return factor * x + offset; }
};

// y = f(x): 8 at a time over the aligned bulk, then the tail one by one.
template <class Fn, class T>
__global__ void map_kernel(const T* x, T* y, int64_t n, int64_t groups, Fn fn) {
  const int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x, step = int64_t{gridDim.x} * blockDim.x;
  for (int64_t g = first; g < groups; g += step) {
    float v[8];
    load8(x + g * 8, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = fn(v[k]);
    store8(y + g * 8, v);
  }
  for (int64_t i = groups * 8 + first; i < n; i += step) store(y, i, fn(load(x, i)));
}

// Over elements [first, first + count), or groups of eight from 0 (kWide: 16-byte accesses).
template <bool kWide, UnaryOp kOp, class T>
__global__ void unary_grad_kernel(const T* x, const float* dy, float* dx, int64_t first, int64_t count,
                                  bool accumulate) {
  const UnaryFn<kOp> fn;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    if constexpr (kWide) {
      float vx[8], vdy[8], vdx[8] = {};
      load8(x + 8 * i, vx);
      load8(dy + 8 * i, vdy);
      if (accumulate) load8(dx + 8 * i, vdx);
#pragma unroll
      for (int k = 0; k < 8; ++k) vdx[k] += vdy[k] * fn.derivative(vx[k]);
      store8(dx + 8 * i, vdx);
    } else {
      const int64_t e = first + i;
      dx[e] = (accumulate ? dx[e] : 0.0f) + dy[e] * fn.derivative(load(x, e));
    }
  }
}

template <class Fn>
Tensor map(const Tensor& x, Fn fn) {
  Tensor result = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return result;
  const int device = x.device().index;
  DeviceGuard guard(device);
  const bool vectorise = aligned16(x.storage()) && aligned16(result.storage());
  const int64_t groups = vectorise ? n / 8 : 0;
  with_dtype(x.dtype(), [&](auto t) {
    using T = VDIT_T(t);
    map_kernel<<<blocks_for(groups > 0 ? groups : n), kThreads, 0, stream(device)>>>(in<T>(x), out<T>(result), n,
                                                                                     groups, fn);
  });
  VDIT_CUDA_CHECK_LAUNCH();
  return result;
}

template <class Fn>
void with_unary_op(UnaryOp op, Fn&& fn) {
  switch (op) {
    case UnaryOp::Square: return fn(std::integral_constant<UnaryOp, UnaryOp::Square>{});
    case UnaryOp::Exp: return fn(std::integral_constant<UnaryOp, UnaryOp::Exp>{});
    case UnaryOp::Log: return fn(std::integral_constant<UnaryOp, UnaryOp::Log>{});
    case UnaryOp::Tanh: return fn(std::integral_constant<UnaryOp, UnaryOp::Tanh>{});
    case UnaryOp::Silu: return fn(std::integral_constant<UnaryOp, UnaryOp::Silu>{});
    case UnaryOp::GeluTanh: return fn(std::integral_constant<UnaryOp, UnaryOp::GeluTanh>{});
  }
}

Tensor unary_op(UnaryOp op, const Tensor& x) {
  Tensor result;
  with_unary_op(op, [&](auto kop) { result = map(x, UnaryFn<decltype(kop)::value>{}); });
  if (!needs_grad({&x})) return result;
  // Every derivative is computed from x in fp32 (exp and tanh too, rather than from a bf16 y).
  GradRef go = Tape::output(result), gx = x.grad_ref();
  const Tensor saved = x.detach();
  Tape::record([go, gx, saved, op] {
    const float* dy = arrived(go);
    const int64_t n = saved.numel();
    if (!dy || !gx || n == 0) return;
    const int device = saved.device().index;
    DeviceGuard guard(device);
    bool fresh = false;
    float* dx = grad_target(*gx, go.get(), &fresh);
    with_unary_op(op, [&](auto kop) {
      with_dtype(saved.dtype(), [&](auto t) {
        const auto* xs = in<VDIT_T(t)>(saved);
        split_launch(n, aligned16(xs) && aligned16(dy) && aligned16(dx), [&](auto wide, int64_t first, int64_t count) {
          unary_grad_kernel<decltype(wide)::value, decltype(kop)::value>
              <<<blocks_for(count), kThreads, 0, stream(device)>>>(xs, dy, dx, first, count, !fresh);
        });
      });
    });
  });
  return result;
}

Tensor affine_op(const Tensor& x, float factor, float offset) {
  Tensor result = map(x, AffineFn{factor, offset});
  if (!needs_grad({&x})) return result;
  GradRef go = Tape::output(result), gx = x.grad_ref();
  const Shape shape = x.shape();
  const int device = x.device().index;
  Tape::record([go, gx, shape, factor, device] {
    if (const float* dy = arrived(go)) accumulate_grad(gx, shape, dy, factor, device);
  });
  return result;
}

}  // namespace

void register_elementwise(CudaBackend& backend) {
  backend.binary = binary_op;
  backend.unary = unary_op;
  backend.affine = affine_op;
}

}  // namespace vdit::cuda
