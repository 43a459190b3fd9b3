// sin and cos (autograd/ops_trig.h): values against std::sin / std::cos, backward against
// central finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/ops_trig.h"
#include "autograd/random.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

TEST(OpsTrig, ValuesAreSineAndCosine) {
  const Tensor x = Tensor::from_vector({3}, {0.0f, 1.0f, -2.5f});
  const std::vector<float> s = sin(x).to_vector(), c = cos(x).to_vector();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(s[i], std::sin(x.to_vector()[i]));
    EXPECT_FLOAT_EQ(c[i], std::cos(x.to_vector()[i]));
  }
}

TEST(OpsTrig, GradientsMatchFiniteDifferences) {
  Rng rng(11);
  // Through a product, so that the gradient arriving at each op is not all ones.
  const Tensor w = rng.normal_tensor({2, 5});
  for (bool cosine : {false, true}) {
    const Tensor x = testing::requiring_grad(rng.normal_tensor({2, 5}, 2.0f));
    const GradCheckResult r =
        check_gradients([&](const std::vector<Tensor>& in) { return mul(cosine ? cos(in[0]) : sin(in[0]), w); }, {x});
    EXPECT_GT(r.max_abs_grad, 0.0);
    EXPECT_LT(r.relative(), 1e-2) << (cosine ? "cos " : "sin ") << r.worst;
  }
}

}  // namespace
}  // namespace vdit
