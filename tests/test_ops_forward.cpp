// Forward values against float64 references written here as naive loops. (The gradient
// checks only show that each backward fits its forward; these show the forward is right.)
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.h"
#include "autograd/random.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

using testing::all_close;

// float32 results of O(100)-term dot products stay within ~1e-6 of the scale; a wrong index
// or a missing term is off by far more.
constexpr double kTolerance = 1e-5;

std::vector<double> widen(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

class OpsForward : public ::testing::Test {
 protected:
  Tensor normal(const Shape& shape, float stddev = 1.0f) { return rng_.normal_tensor(shape, stddev); }
  Rng rng_{99};
};

// y[r, o] = b[o] + sum_i x[r, i] w[o, i]
std::vector<double> reference_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t out = w.size(0), in = w.size(1), rows = x.numel() / in;
  const std::vector<double> px = widen(x), pw = widen(w);
  const std::vector<double> pb = b.defined() ? widen(b) : std::vector<double>(out, 0.0);
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = pb[o];
      for (int64_t i = 0; i < in; ++i) s += px[r * in + i] * pw[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

TEST_F(OpsForward, LinearMatchesReference) {
  const Tensor x = normal({3, 4, 37}), w = normal({29, 37}), b = normal({29});
  const Tensor y = linear(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{3, 4, 29}));
  EXPECT_TRUE(all_close(y.to_vector(), reference_linear(x, w, b), kTolerance));
  EXPECT_TRUE(all_close(linear(x, w).to_vector(), reference_linear(x, w, {}), kTolerance));
}

// c[i] = a[i] b[i] per batch entry i, or a[i] b for a shared 2-d b.
std::vector<double> reference_matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1), batches = a.numel() / (m * k);
  const int64_t b_step = b.ndim() == 2 ? 0 : k * n;
  const std::vector<double> pa = widen(a), pb = widen(b);
  std::vector<double> c(batches * m * n, 0.0);
  for (int64_t t = 0; t < batches; ++t)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p)
          c[(t * m + i) * n + j] += pa[(t * m + i) * k + p] * pb[t * b_step + p * n + j];
  return c;
}

TEST_F(OpsForward, MatmulBatchedMatchesReference) {
  const Tensor a = normal({2, 3, 17, 19}), b = normal({2, 3, 19, 13});
  const Tensor c = matmul(a, b);
  EXPECT_EQ(c.shape(), (Shape{2, 3, 17, 13}));
  EXPECT_TRUE(all_close(c.to_vector(), reference_matmul(a, b), kTolerance));
}

TEST_F(OpsForward, MatmulWithSharedRightMatchesReference) {
  const Tensor a = normal({4, 17, 19}), b = normal({19, 13});
  EXPECT_TRUE(all_close(matmul(a, b).to_vector(), reference_matmul(a, b), kTolerance));
}

TEST_F(OpsForward, SoftmaxMatchesReferenceForLargeLogits) {
  // Logits near 100: exp overflows float unless the row maximum is subtracted first.
  const Tensor x = add_scalar(normal({4, 33}, 10.0f), 100.0f);
  const std::vector<double> px = widen(x);
  std::vector<double> y(px.size());
  for (int64_t r = 0; r < 4; ++r) {
    double m = -INFINITY, total = 0.0;
    for (int64_t j = 0; j < 33; ++j) m = std::max(m, px[r * 33 + j]);
    for (int64_t j = 0; j < 33; ++j) total += y[r * 33 + j] = std::exp(px[r * 33 + j] - m);
    for (int64_t j = 0; j < 33; ++j) y[r * 33 + j] /= total;
  }
  EXPECT_TRUE(all_close(softmax(x).to_vector(), y, kTolerance));
}

// (x - mean) / sqrt(var + eps) * w + b per row; RMSNorm when not `centred` (mean taken as 0).
std::vector<double> reference_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps,
                                   bool centred) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  const std::vector<double> px = widen(x);
  const std::vector<double> pw = w.defined() ? widen(w) : std::vector<double>(d, 1.0);
  const std::vector<double> pb = b.defined() ? widen(b) : std::vector<double>(d, 0.0);
  std::vector<double> y(px.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = px.data() + r * d;
    double mu = 0.0, var = 0.0;
    for (int64_t j = 0; centred && j < d; ++j) mu += xr[j] / d;
    for (int64_t j = 0; j < d; ++j) var += (xr[j] - mu) * (xr[j] - mu) / d;
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = (xr[j] - mu) / std::sqrt(var + eps) * pw[j] + pb[j];
  }
  return y;
}

TEST_F(OpsForward, LayerNormMatchesReference) {
  const Tensor x = add_scalar(normal({5, 48}, 2.0f), 3.0f), w = normal({48}), b = normal({48});
  EXPECT_TRUE(all_close(layer_norm(x, w, b, 1e-5f).to_vector(), reference_norm(x, w, b, 1e-5, true),
                        kTolerance));
  EXPECT_TRUE(all_close(layer_norm(x, {}, {}, 1e-5f).to_vector(),
                        reference_norm(x, {}, {}, 1e-5, true), kTolerance));
}

TEST_F(OpsForward, RmsNormMatchesReference) {
  const Tensor x = add_scalar(normal({5, 48}, 2.0f), 3.0f), w = normal({48});
  EXPECT_TRUE(all_close(rms_norm(x, w, 1e-6f).to_vector(), reference_norm(x, w, {}, 1e-6, false),
                        kTolerance));
}

TEST_F(OpsForward, RopeRotatesAdjacentPairs) {
  const int64_t batch = 2, tokens = 5, heads = 3, head_dim = 8, pairs = head_dim / 2;
  const Tensor x = normal({batch, tokens, heads, head_dim});
  Tensor cos = Tensor::empty({tokens, pairs}), sin = Tensor::empty({tokens, pairs});
  for (int64_t i = 0; i < tokens * pairs; ++i) {
    const double angle = 0.37 * static_cast<double>(i) - 2.0;
    cos.data()[i] = static_cast<float>(std::cos(angle));
    sin.data()[i] = static_cast<float>(std::sin(angle));
  }
  const std::vector<double> px = widen(x), pc = widen(cos), ps = widen(sin);
  std::vector<double> y(px.size());
  for (int64_t row = 0; row < batch * tokens * heads; ++row) {
    const int64_t n = (row / heads) % tokens;
    for (int64_t j = 0; j < pairs; ++j) {
      const int64_t e = row * head_dim + 2 * j;
      const double c = pc[n * pairs + j], s = ps[n * pairs + j];
      y[e] = px[e] * c - px[e + 1] * s;
      y[e + 1] = px[e] * s + px[e + 1] * c;
    }
  }
  EXPECT_TRUE(all_close(rope(x, cos, sin).to_vector(), y, kTolerance));
}

// Inputs from -12 to 12, where the activations' tails saturate.
Tensor activation_inputs() {
  std::vector<float> v;
  for (int i = -60; i <= 60; ++i) v.push_back(0.2f * static_cast<float>(i) + 0.013f);
  return Tensor::from_vector({static_cast<int64_t>(v.size())}, v);
}

std::vector<double> apply(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> y = widen(x);
  for (double& v : y) v = f(v);
  return y;
}

TEST_F(OpsForward, GeluTanhMatchesReference) {
  const Tensor x = activation_inputs();
  const std::vector<double> y = apply(x, [](double v) {
    return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  });
  EXPECT_TRUE(all_close(gelu_tanh(x).to_vector(), y, 1e-6));
}

TEST_F(OpsForward, SiluMatchesReference) {
  const Tensor x = activation_inputs();
  const std::vector<double> y = apply(x, [](double v) { return v / (1.0 + std::exp(-v)); });
  EXPECT_TRUE(all_close(silu(x).to_vector(), y, 1e-6));
}

TEST_F(OpsForward, ElementaryUnaryOps) {
  const Tensor x = Tensor::from_vector({4}, {0.25f, 0.5f, 1.5f, 3.0f});
  EXPECT_TRUE(all_close(scale(x, -2.0f).to_vector(), apply(x, [](double v) { return -2 * v; }), 1e-7));
  EXPECT_TRUE(all_close(add_scalar(x, 0.5f).to_vector(), apply(x, [](double v) { return v + 0.5; }), 1e-7));
  EXPECT_TRUE(all_close(square(x).to_vector(), apply(x, [](double v) { return v * v; }), 1e-7));
  EXPECT_TRUE(all_close(exp(x).to_vector(), apply(x, [](double v) { return std::exp(v); }), 1e-6));
  EXPECT_TRUE(all_close(log(x).to_vector(), apply(x, [](double v) { return std::log(v); }), 1e-6));
  EXPECT_TRUE(all_close(tanh(x).to_vector(), apply(x, [](double v) { return std::tanh(v); }), 1e-6));
}

TEST_F(OpsForward, BinaryOpsBroadcastBothOperands) {
  const Tensor a = normal({2, 1, 5}), b = add_scalar(normal({1, 3, 5}, 0.1f), 1.0f);
  const std::vector<double> pa = widen(a), pb = widen(b);
  const std::vector<std::pair<std::function<Tensor(const Tensor&, const Tensor&)>,
                              std::function<double(double, double)>>>
      ops = {{add, std::plus<double>()},
             {sub, std::minus<double>()},
             {mul, std::multiplies<double>()},
             {div, std::divides<double>()}};
  for (size_t op = 0; op < ops.size(); ++op) {
    const Tensor c = ops[op].first(a, b);
    EXPECT_EQ(c.shape(), (Shape{2, 3, 5}));
    std::vector<double> expected;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 5; ++k) expected.push_back(ops[op].second(pa[i * 5 + k], pb[j * 5 + k]));
    EXPECT_TRUE(all_close(c.to_vector(), expected, 1e-6)) << "op " << op;
  }
}

TEST_F(OpsForward, SumAndMeanOverAxes) {
  const Tensor x = normal({3, 4, 5});
  const std::vector<double> px = widen(x);
  std::vector<double> sum_02(4, 0.0), mean_1(15, 0.0);
  double total = 0.0;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 5; ++k) {
        const double v = px[(i * 4 + j) * 5 + k];
        sum_02[j] += v;
        mean_1[i * 5 + k] += v / 4;
        total += v;
      }
  EXPECT_EQ(sum(x, {0, 2}).shape(), (Shape{4}));
  EXPECT_EQ(sum(x, {0, -1}, true).shape(), (Shape{1, 4, 1}));
  EXPECT_TRUE(all_close(sum(x, {0, -1}, true).to_vector(), sum_02, 1e-6));
  EXPECT_EQ(mean(x, {1}).shape(), (Shape{3, 5}));
  EXPECT_TRUE(all_close(mean(x, {1}).to_vector(), mean_1, 1e-6));
  EXPECT_EQ(sum_all(x).shape(), Shape{});
  EXPECT_NEAR(sum_all(x).item(), total, 1e-5);
}

TEST_F(OpsForward, MseLossIsMeanSquaredError) {
  const Tensor p = Tensor::from_vector({2, 2}, {1, 2, 3, 4}), t = Tensor::from_vector({2, 2}, {1, 0, 4, 1});
  EXPECT_FLOAT_EQ(mse_loss(p, t).item(), (0 + 4 + 1 + 9) / 4.0f);
}

// 0, 1, ..., n - 1: each element names its own flat index, so moves are easy to follow.
std::vector<double> iota_values(int64_t n) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return v;
}

Tensor iota(const Shape& shape) {
  const std::vector<double> v = iota_values(numel(shape));
  return Tensor::from_vector(shape, std::vector<float>(v.begin(), v.end()));
}

TEST_F(OpsForward, PermuteAndTransposeMoveElements) {
  const Tensor x = iota({2, 3, 4});
  std::vector<double> permuted, transposed;
  for (int64_t k = 0; k < 4; ++k)  // permute {2, 0, 1}: out[k, i, j] = x[i, j, k]
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) permuted.push_back((i * 3 + j) * 4 + k);
  for (int64_t k = 0; k < 4; ++k)  // transpose(0, 2): out[k, j, i] = x[i, j, k]
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t i = 0; i < 2; ++i) transposed.push_back((i * 3 + j) * 4 + k);
  EXPECT_EQ(permute(x, {2, 0, 1}).shape(), (Shape{4, 2, 3}));
  EXPECT_TRUE(all_close(permute(x, {2, 0, 1}).to_vector(), permuted, 0.0));
  EXPECT_TRUE(all_close(transpose(x, 0, -1).to_vector(), transposed, 0.0));
}

TEST_F(OpsForward, SliceConcatSplitChunkMoveElements) {
  const Tensor x = iota({2, 5, 3});
  std::vector<double> middle;  // slice axis 1 [1, 4)
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 1; j < 4; ++j)
      for (int64_t k = 0; k < 3; ++k) middle.push_back((i * 5 + j) * 3 + k);
  EXPECT_TRUE(all_close(slice(x, 1, 1, 4).to_vector(), middle, 0.0));
  const std::vector<Tensor> parts = split(x, 1, {1, 3, 1});
  EXPECT_TRUE(all_close(parts[1].to_vector(), middle, 0.0));
  EXPECT_TRUE(all_close(concat(parts, 1).to_vector(), iota_values(30), 0.0));
  const std::vector<Tensor> halves = chunk(x, 0, 2);
  EXPECT_TRUE(all_close(concat({halves[0], halves[1]}, 0).to_vector(), iota_values(30), 0.0));
  EXPECT_EQ(halves[1].to_vector()[0], 15.0f);
  EXPECT_EQ(reshape(x, {-1, 6}).shape(), (Shape{5, 6}));
}

}  // namespace
}  // namespace vdit
