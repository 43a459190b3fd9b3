// The BLAS door: sgemm's transposes and leading dimensions, and the kernel chosen at load.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/blas.h"
#include "autograd/random.h"
#include "tests/fixtures.h"

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

// Sizes m x n x k: small (one call), and tall and wide ones that a BLAS other than the OpenMP
// build splits by rows or by columns across the OpenMP threads (blas.cpp).
struct GemmSize {
  int64_t m, n, k;
  const char* name;
};
constexpr GemmSize kSizes[] = {{5, 7, 9, "small"}, {301, 70, 40, "tall"}, {40, 299, 70, "wide"}};

class BlasTranspose : public ::testing::TestWithParam<std::tuple<bool, bool, GemmSize>> {};

TEST_P(BlasTranspose, SgemmMatchesNaiveLoopWithWideLeadingDimensions) {
  const auto [trans_a, trans_b, size] = GetParam();
  const auto [m, n, k, name] = size;
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
      double dot = 0.0, magnitude = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double term = static_cast<double>(trans_a ? a.at(p, i) : a.at(i, p)) * (trans_b ? b.at(j, p) : b.at(p, j));
        dot += term;
        magnitude += std::fabs(term);
      }
      const double expected = alpha * dot + beta * c_before.at(i, j);
      // Float32 summation's error bound (Higham, Accuracy and Stability, eq. 3.5): k + 2
      // roundings of at most 2^-24 each, relative to the sum of the terms' magnitudes; it
      // holds for any kernel's blocking, order and FMA use.
      const double bound = (k + 2) * 0x1p-24 * (std::fabs(alpha) * magnitude + std::fabs(beta * c_before.at(i, j)));
      EXPECT_NEAR(c.at(i, j), expected, bound) << i << ", " << j;
    }
    for (int64_t j = n; j < c.ld; ++j) EXPECT_EQ(c.at(i, j), kSentinel) << "padding " << i << ", " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Blas, BlasTranspose,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::ValuesIn(kSizes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "AT" : "A") +
                                  (std::get<1>(info.param) ? "_BT_" : "_B_") + std::get<2>(info.param).name;
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

// Debian's fixed paths of the two builds (libopenblas0-openmp, libopenblas0-pthread).
constexpr char kOpenMpBuild[] = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0";
constexpr char kPthreadBuild[] = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0";

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Blas, LoadsTheOpenMpBuildWhenThePthreadBuildIsTheSystemDefault) {
  if (!std::filesystem::exists(kPthreadBuild))
    GTEST_SKIP() << "libopenblas0-pthread is not installed (scripts/install-deps.sh installs it)";
  // A machine whose OpenMP build lives elsewhere (a prefix, another distribution) cannot stage
  // Debian's case; scripts/install-deps.sh installs both where the test is meant to run.
  if (!std::filesystem::exists(kOpenMpBuild))
    GTEST_SKIP() << "libopenblas0-openmp is not installed at " << kOpenMpBuild;
  testing::ScratchDir dir;
  // The loader searches LD_LIBRARY_PATH before the system's alternatives, so there the pthread
  // build is this process's default libopenblas.so.0, whatever the machine's own default is.
  std::filesystem::create_symlink(kPthreadBuild, dir / "libopenblas.so.0");
  const std::string env = "env -u VDITKIT_OPENBLAS LD_LIBRARY_PATH=" + dir.path().string() + " ";
  const testing::CommandResult by_soname = testing::run_command(
      env + VDITKIT_PYTHON + " -c \"import ctypes; print(ctypes.CDLL('libopenblas.so.0').openblas_get_parallel())\"");
  ASSERT_EQ(by_soname.output, "1\n") << "the pthread build should be what libopenblas.so.0 opens here";
  const testing::CommandResult r = testing::run_command(env + VDITKIT_BINARY + " --version");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(std::string("OpenMP build, core ")), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(kOpenMpBuild), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
}

TEST(Blas, AnotherBuildSaysSoOnceAndSplitsProductsAcrossOurThreads) {
  if (!std::filesystem::exists(kPthreadBuild))
    GTEST_SKIP() << "libopenblas0-pthread is not installed (scripts/install-deps.sh installs it)";
  const std::string env = std::string("VDITKIT_OPENBLAS=") + kPthreadBuild + " OMP_NUM_THREADS=3 ";
  const testing::CommandResult version = testing::run_command(env + VDITKIT_BINARY + " --version");
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_NE(version.output.find("pthreads build"), std::string::npos) << version.output;
  EXPECT_EQ(count(version.output, "warning"), 1u) << version.output;
  // Three threads split the tall and wide products into uneven slabs; every one must be right.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const testing::CommandResult products =
      testing::run_command(env + self + " --gtest_filter='Blas/BlasTranspose.*'");
  EXPECT_EQ(products.exit_code, 0) << products.output;
  EXPECT_NE(products.output.find("[  PASSED  ] 12 tests"), std::string::npos) << products.output;
  EXPECT_EQ(count(products.output, "warning"), 1u) << products.output;
}

}  // namespace
}  // namespace vdit
