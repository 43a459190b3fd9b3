// Products with frozen bf16 weights: the native bf16 path (oneDNN) against the float32 product
// of the same values, within the bound gemm_bf16.h states; the choice of path by CPU feature;
// and the float32 fallback, exact, when the native path is off.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/gemm_bf16.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using gemm::Bf16Path;

TEST(Bf16Gemm, NativePathByDefaultWithAmxOnAvx512Bf16WhenAskedNeverWithout) {
  CpuFeatures avx2, avx512_bf16, amx;
  avx2.avx2 = avx512_bf16.avx2 = amx.avx2 = true;
  avx512_bf16.avx512 = avx512_bf16.avx512_bf16 = amx.avx512 = amx.avx512_bf16 = true;
  amx.amx_bf16 = true;
  for (const char* env : {static_cast<const char*>(nullptr), "0", "1"})
    EXPECT_EQ(gemm::choose_bf16_path(avx2, env), Bf16Path::Widen) << (env ? env : "unset");  // asking adds no feature
  EXPECT_EQ(gemm::choose_bf16_path(avx512_bf16, nullptr), Bf16Path::Widen);
  EXPECT_EQ(gemm::choose_bf16_path(avx512_bf16, "1"), Bf16Path::Native);
  EXPECT_EQ(gemm::choose_bf16_path(amx, nullptr), Bf16Path::Native);
  EXPECT_EQ(gemm::choose_bf16_path(amx, "0"), Bf16Path::Widen);
}

// Per element of C = A B: sum_p A[i, p] B[p, j] in float64, and sum_p |A[i, p] B[p, j]|.
struct Reference {
  std::vector<double> value, magnitude;
};

// a [m, k], b as a linear weight [n, k] (transposed) or [k, n].
Reference reference_product(const std::vector<float>& a, const std::vector<float>& b, int64_t m, int64_t n,
                            int64_t k, bool b_is_weight) {
  Reference r{std::vector<double>(m * n), std::vector<double>(m * n)};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) {
        const double term = static_cast<double>(a[i * k + p]) * (b_is_weight ? b[j * k + p] : b[p * n + j]);
        r.value[i * n + j] += term;
        r.magnitude[i * n + j] += std::fabs(term);
      }
  return r;
}

bool cpu_multiplies_bf16() { return cpu_features().avx512_bf16 || cpu_features().amx_bf16; }

// `vditkit-tests` again with ENV, running FILTER: every test selected must pass, none skip.
void expect_child_passes(const std::string& env, const std::string& filter, int tests) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const testing::CommandResult r = testing::run_command(env + " " + self + " --gtest_filter=" + filter);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[  PASSED  ] " + std::to_string(tests) + " test"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("SKIPPED"), std::string::npos) << r.output;
}

// gemm_bf16.h's bound: narrowing A moves each output by at most 2^-9 of sum |a b|; on top,
// float32 accumulation's (k + 2) roundings of 2^-24 (doubled: vdpbf16ps adds pairs, then
// accumulates).
double bf16_bound(double magnitude, int64_t k) { return (0x1p-9 + 2.0 * (k + 2) * 0x1p-24) * magnitude; }

class Bf16GemmNative : public ::testing::Test {
 protected:
  void SetUp() override {
    if (gemm::bf16_path() != Bf16Path::Native)
      GTEST_SKIP() << "native bf16 products are off here (" << isa_summary(cpu_features())
                   << "); VDITKIT_CPU_BF16=1 runs these where the CPU has AVX512-BF16";
  }
  Rng rng_{7};
};

TEST_F(Bf16GemmNative, LinearForwardIsWithinBf16RoundingOfTheFloat32Product) {
  const int64_t rows = 3 * 41, in = 203, out = 130;  // odd sizes: no kernel-friendly multiples
  const Tensor x = rng_.normal_tensor({3, 41, in});
  const Tensor w = rng_.normal_tensor({out, in}).to_bf16();
  const Tensor y = linear(x, w);
  const std::vector<float> got = y.to_vector(), widened = linear(x, w.to_f32()).to_vector();
  const Reference ref = reference_product(x.to_vector(), w.to_f32().to_vector(), rows, out, in, true);
  int differs_from_float32 = 0;
  for (int64_t e = 0; e < rows * out; ++e) {
    ASSERT_NEAR(got[e], ref.value[e], bf16_bound(ref.magnitude[e], in)) << "row " << e / out << ", column " << e % out;
    differs_from_float32 += got[e] != widened[e];
  }
  // The product ran in bf16 (x was narrowed), not through the float32 path.
  EXPECT_GT(differs_from_float32, rows * out / 2);
}

TEST_F(Bf16GemmNative, LinearInputGradientAccumulatesWithinBf16Rounding) {
  const int64_t rows = 37, in = 90, out = 151;
  const Tensor x = testing::requiring_grad(rng_.normal_tensor({rows, in}));
  const Tensor w = rng_.normal_tensor({out, in}).to_bf16();
  const Tensor u1 = rng_.normal_tensor({rows, out}), u2 = rng_.normal_tensor({rows, out});
  // x feeds two products, so the second backward GEMM accumulates into dx (beta 1).
  sum_all(add(mul(linear(x, w), u1), mul(linear(x, w), u2))).backward();
  const std::vector<float> dx = x.grad().to_vector(), wf = w.to_f32().to_vector();
  const Reference r1 = reference_product(u1.to_vector(), wf, rows, in, out, false);
  const Reference r2 = reference_product(u2.to_vector(), wf, rows, in, out, false);
  for (int64_t e = 0; e < rows * in; ++e) {
    const double expected = r1.value[e] + r2.value[e];
    const double bound = bf16_bound(r1.magnitude[e] + r2.magnitude[e], out) + 0x1p-24 * std::fabs(expected);
    ASSERT_NEAR(dx[e], expected, bound) << "row " << e / in << ", column " << e % in;
  }
}

TEST(Bf16Gemm, FallbackMultipliesTheWidenedWeightsExactly) {
  if (gemm::bf16_path() != Bf16Path::Widen)
    GTEST_SKIP() << "native bf16 products here; VDITKIT_CPU_BF16=0 runs this (next test)";
  Rng rng(8);
  const Tensor x = rng.normal_tensor({45, 64});
  const Tensor w = rng.normal_tensor({33, 64}).to_bf16();
  EXPECT_EQ(testing::bit_pattern(linear(x, w)), testing::bit_pattern(linear(x, w.to_f32())));
}

TEST(Bf16Gemm, EnvironmentVariableTurnsTheNativePathOff) {
  expect_child_passes("VDITKIT_CPU_BF16=0", "Bf16Gemm.FallbackMultipliesTheWidenedWeightsExactly", 1);
}

TEST(Bf16Gemm, EnvironmentVariableTurnsTheNativePathOnWhereTheCpuHasIt) {
  if (!cpu_multiplies_bf16()) GTEST_SKIP() << "no AVX512-BF16 or AMX-BF16 (" << isa_summary(cpu_features()) << ")";
  expect_child_passes("VDITKIT_CPU_BF16=1", "Bf16GemmNative.*", 2);
}

}  // namespace
}  // namespace vdit
