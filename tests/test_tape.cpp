// Tape semantics (what is recorded, how gradients accumulate) and the determinism promised by
// autograd/parallel.h.
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/parallel.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

using testing::all_close;
using testing::bit_pattern;
using testing::on_threads;
using testing::requiring_grad;

class TapeSemantics : public ::testing::Test {
 protected:
  void SetUp() override { Tape::clear(); }
  void TearDown() override { Tape::clear(); }
};

TEST_F(TapeSemantics, GradientsAccumulateOverBackwardPassesUntilZeroGrad) {
  Tensor x = requiring_grad(Tensor::from_vector({2}, {1.0f, -3.0f}));
  auto pass = [&] { sum_all(square(x)).backward(); };  // d/dx = 2x
  pass();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2.0f, -6.0f}));
  pass();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{4.0f, -12.0f}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  pass();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2.0f, -6.0f}));
}

// linear and matmul write a first gradient straight into a fresh buffer (GEMM beta = 0):
// later passes must still add to it.
TEST_F(TapeSemantics, GemmGradientsAccumulateOverBackwardPasses) {
  Rng rng(1);
  Tensor x = requiring_grad(rng.normal_tensor({3, 4})), w = requiring_grad(rng.normal_tensor({5, 4}));
  Tensor m = requiring_grad(rng.normal_tensor({5, 2}));
  auto pass = [&] { sum_all(matmul(linear(x, w), m)).backward(); };
  auto doubled = [](const Tensor& grad) {
    std::vector<double> d;
    for (float v : grad.to_vector()) d.push_back(2.0 * v);
    return d;
  };
  pass();
  const std::vector<double> x2 = doubled(x.grad()), w2 = doubled(w.grad()), m2 = doubled(m.grad());
  pass();
  EXPECT_TRUE(all_close(x.grad().to_vector(), x2, 1e-6));
  EXPECT_TRUE(all_close(w.grad().to_vector(), w2, 1e-6));
  EXPECT_TRUE(all_close(m.grad().to_vector(), m2, 1e-6));
}

TEST_F(TapeSemantics, RecordsNothingWhenNoInputRequiresGrad) {
  const Tensor a = Tensor::full({3, 4}, 2.0f), w = Tensor::full({5, 4}, 1.0f);
  const Tensor y = sum_all(gelu_tanh(linear(a, w)));
  EXPECT_EQ(Tape::size(), 0u);
  EXPECT_FALSE(y.requires_grad());
}

TEST_F(TapeSemantics, RecordsNothingUnderNoGradScope) {
  const Tensor x = requiring_grad(Tensor::full({3}, 2.0f));
  {
    NoGradScope no_grad;
    const Tensor y = sum_all(mul(x, x));
    EXPECT_EQ(Tape::size(), 0u);
    EXPECT_FALSE(y.requires_grad());
    {
      NoGradScope nested;
    }
    EXPECT_FALSE(Tape::grad_enabled());  // the inner scope restores "off", not "on"
  }
  EXPECT_TRUE(Tape::grad_enabled());
  EXPECT_TRUE(sum_all(x).requires_grad());
  EXPECT_EQ(Tape::size(), 1u);
}

TEST_F(TapeSemantics, BackwardReleasesTheTape) {
  Tensor x = requiring_grad(Tensor::full({3}, 2.0f));
  const Tensor y = sum_all(exp(x));
  EXPECT_EQ(Tape::size(), 2u);
  y.backward();
  EXPECT_EQ(Tape::size(), 0u);
}

TEST_F(TapeSemantics, DetachCutsHistory) {
  Tensor x = requiring_grad(Tensor::from_vector({2}, {2.0f, 5.0f}));
  const Tensor frozen = square(x).detach();
  EXPECT_FALSE(frozen.requires_grad());
  sum_all(mul(frozen, x)).backward();  // x^2 taken as a constant: d/dx = x^2, not 3 x^2
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{4.0f, 25.0f}));
}

TEST_F(TapeSemantics, TensorUsedTwiceGetsBothGradients) {
  Tensor x = requiring_grad(Tensor::from_vector({2}, {2.0f, 5.0f}));
  sum_all(add(scale(x, 3.0f), mul(x, x))).backward();  // 3 + 2x
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{7.0f, 13.0f}));
}

TEST_F(TapeSemantics, BackwardNeedsAScalarThatRequiresGrad) {
  const Tensor x = requiring_grad(Tensor::full({3}, 1.0f));
  EXPECT_THROW(exp(x).backward(), Error);
  EXPECT_THROW(Tensor::full({}, 1.0f).backward(), Error);
}

// --- determinism ---

using Results = std::function<std::vector<Tensor>()>;

std::vector<std::vector<uint32_t>> bits_of(const std::vector<Tensor>& results) {
  std::vector<std::vector<uint32_t>> bits;
  for (const Tensor& t : results) bits.push_back(bit_pattern(t));
  return bits;
}

void expect_repeatable(const Results& compute) { EXPECT_EQ(bits_of(compute()), bits_of(compute())); }

void expect_thread_count_independent(const Results& compute) {
  auto run = [&] { return bits_of(compute()); };
  EXPECT_EQ(on_threads(1, run), on_threads(2, run));
}

// Large enough that every deterministic reduction below splits into several chunks.
constexpr int64_t kRows = 1000, kWidth = 70;

// Terms whose double sum depends on how they are grouped: 2^60 first, -2^60 last and ones
// between. Added one at a time to 2^60 each 1 is lost (the spacing there is 256); summed
// within a chunk first, the ones of later chunks survive. So the total shows the chunking.
double cancelling_term(int64_t i, int64_t n) { return i == 0 ? 0x1p60 : (i == n - 1 ? -0x1p60 : 1.0); }

// [kRows, kWidth] of cancelling terms down each column: what the row sums below reduce.
Tensor cancelling_rows() {
  Tensor g = Tensor::empty({kRows, kWidth});
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t j = 0; j < kWidth; ++j) g.data()[r * kWidth + j] = static_cast<float>(cancelling_term(r, kRows));
  return g;
}

// The bias gradient of a linear layer (deterministic_row_sum over rows of the output
// gradient, which is the fixed g, so that only the reduction and not the GEMM is compared).
std::vector<Tensor> linear_bias_grad() {
  Rng rng(3);
  const Tensor x = rng.normal_tensor({kRows, kWidth}), w = rng.normal_tensor({kWidth, kWidth});
  Tensor b = requiring_grad(rng.normal_tensor({kWidth}));
  sum_all(mul(linear(x, w, b), cancelling_rows())).backward();
  return {b.grad()};
}

// LayerNorm's gradients: weight and bias by deterministic_row_sum, the input row by row.
std::vector<Tensor> layer_norm_grads() {
  Rng rng(5);
  Tensor x = requiring_grad(rng.normal_tensor({kRows, kWidth}));
  Tensor w = requiring_grad(rng.normal_tensor({kWidth})), b = requiring_grad(rng.normal_tensor({kWidth}));
  sum_all(mul(layer_norm(x, w, b, 1e-6f), cancelling_rows())).backward();
  return {x.grad(), w.grad(), b.grad()};
}

// mse_loss (deterministic_sum) and its gradients.
std::vector<Tensor> mse_loss_and_grads() {
  Rng rng(4);
  Tensor p = requiring_grad(rng.normal_tensor({kRows, kWidth}));
  Tensor t = requiring_grad(rng.normal_tensor({kRows, kWidth}, 3.0f));
  const Tensor loss = mse_loss(p, t);
  loss.backward();
  return {loss.detach(), p.grad(), t.grad()};
}

std::vector<Tensor> sums_over_axes() {
  Rng rng(6);
  const Tensor x = rng.normal_tensor({40, 30, 50});
  return {sum(x, {0, 2}), sum(x, {1}), sum_all(x), mean(x, {0}, true)};
}

TEST(Determinism, LinearBiasGradIsRepeatable) { expect_repeatable(linear_bias_grad); }
TEST(Determinism, MseLossIsRepeatable) { expect_repeatable(mse_loss_and_grads); }
TEST(Determinism, SumIsRepeatable) { expect_repeatable(sums_over_axes); }

TEST(Determinism, DeterministicSumIgnoresThreadCount) {
  const int64_t n = 5 * (1 << 14) + 17;
  auto total = [n] { return deterministic_sum(n, [n](int64_t i) { return cancelling_term(i, n); }); };
  EXPECT_EQ(on_threads(1, total), on_threads(2, total));
}

TEST(Determinism, DeterministicRowSumIgnoresThreadCount) {
  auto row_sums = [] {
    std::vector<float> dst(3, 0.0f);
    deterministic_row_sum(kRows, 3, dst.data(), [](int64_t r, double* partial) {
      for (int j = 0; j < 3; ++j) partial[j] += (j + 1) * cancelling_term(r, kRows);
    });
    return dst;
  };
  EXPECT_EQ(on_threads(1, row_sums), on_threads(2, row_sums));
}

// Partials are one width-wide vector per chunk; at 32,760 tokens x 8,960 features, 64-row
// chunks would take 37 MB of them, and more with every row.
TEST(Determinism, DeterministicRowSumKeepsAFixedNumberOfPartials) {
  for (const int64_t rows : {int64_t{32760}, int64_t{1} << 20}) {
    std::set<const double*> partials;
    std::vector<float> dst(1, 0.0f);
    deterministic_row_sum(rows, 1, dst.data(), [&](int64_t, double* partial) {
#pragma omp critical
      partials.insert(partial);
      partial[0] += 1.0;
    });
    EXPECT_EQ(dst[0], static_cast<float>(rows));
    EXPECT_EQ(partials.size(), static_cast<size_t>(kRowSumChunks)) << rows << " rows";
  }
}

TEST(Determinism, LinearBiasGradIgnoresThreadCount) { expect_thread_count_independent(linear_bias_grad); }
TEST(Determinism, LayerNormGradsIgnoreThreadCount) { expect_thread_count_independent(layer_norm_grads); }
TEST(Determinism, MseLossIgnoresThreadCount) { expect_thread_count_independent(mse_loss_and_grads); }

}  // namespace
}  // namespace vdit
