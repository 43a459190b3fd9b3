// The BLAS door: sgemm's transposes and leading dimensions, and the kernel chosen at load.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/blas.h"
#include "autograd/random.h"

namespace vdit {
namespace {

// A row-major matrix of `rows` x `cols` stored `ld` apart, padding filled with a sentinel.
struct Padded {
  int64_t rows, cols, ld;
  std::vector<float> values;
  float at(int64_t r, int64_t c) const { return values[r * ld + c]; }
};

constexpr float kSentinel = -777.0f;

Padded random_padded(Rng& rng, int64_t rows, int64_t cols, int64_t ld) {
  Padded m{rows, cols, ld, std::vector<float>(rows * ld, kSentinel)};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.values[r * ld + c] = static_cast<float>(rng.normal());
  return m;
}

class BlasTranspose : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(BlasTranspose, SgemmMatchesNaiveLoopWithWideLeadingDimensions) {
  const auto [trans_a, trans_b] = GetParam();
  const int64_t m = 5, n = 7, k = 9;
  const float alpha = 1.5f, beta = -0.5f;
  Rng rng(11);
  // Stored shapes: op(A) = A^T when transposed, so A is then [k, m].
  const Padded a = trans_a ? random_padded(rng, k, m, m + 3) : random_padded(rng, m, k, k + 2);
  const Padded b = trans_b ? random_padded(rng, n, k, k + 4) : random_padded(rng, k, n, n + 1);
  Padded c = random_padded(rng, m, n, n + 5);
  const Padded c_before = c;
  blas::sgemm(trans_a, trans_b, m, n, k, alpha, a.values.data(), a.ld, b.values.data(), b.ld, beta,
              c.values.data(), c.ld);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int64_t p = 0; p < k; ++p)
        dot += static_cast<double>(trans_a ? a.at(p, i) : a.at(i, p)) * (trans_b ? b.at(j, p) : b.at(p, j));
      const double expected = alpha * dot + beta * c_before.at(i, j);
      EXPECT_NEAR(c.at(i, j), expected, 1e-5 * (1.0 + std::fabs(expected))) << i << ", " << j;
    }
    for (int64_t j = n; j < c.ld; ++j) EXPECT_EQ(c.at(i, j), kSentinel) << "padding " << i << ", " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Blas, BlasTranspose, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "AT" : "A") +
                                  (std::get<1>(info.param) ? "_BT" : "_B");
                         });

// The environment the process started with (/proc/self/environ), which blas.cpp's own setenv
// does not change.
bool started_with_env(const std::string& name) {
  std::ifstream in("/proc/self/environ");
  std::string entry;
  while (std::getline(in, entry, '\0'))
    if (entry.rfind(name + "=", 0) == 0) return true;
  return false;
}

std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return line + " ";
  return "";
}

TEST(Blas, SelectsSkylakeXKernelOnAvx512Cpus) {
  const std::string flags = cpu_flags();
  // blas.cpp asks for SkylakeX when the CPU has the AVX-512 subsets those kernels use.
  for (const char* f : {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
    if (flags.find(std::string(" ") + f + " ") == std::string::npos)
      GTEST_SKIP() << "no " << f << " on this CPU";
  if (started_with_env("OPENBLAS_CORETYPE")) GTEST_SKIP() << "OPENBLAS_CORETYPE set by the user";
  EXPECT_EQ(blas::preferred_core_type(), "SkylakeX");
  EXPECT_EQ(blas::core_name(), "SkylakeX") << blas::config();
}

}  // namespace
}  // namespace vdit
