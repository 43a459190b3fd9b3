#include "autograd/gradcheck.h"

#include <cmath>
#include <random>
#include <sstream>

#include "autograd/check.h"
#include "autograd/ops.h"

namespace vdit {

namespace {

double weighted_sum(const Tensor& out, const std::vector<double>& w) {
  const std::vector<float> values = out.to_vector();
  double total = 0.0;
  for (size_t i = 0; i < values.size(); ++i) total += w[i] * values[i];
  return total;
}

}  // namespace

GradCheckResult check_gradients(const TensorFn& f, const std::vector<Tensor>& inputs, double eps,
                                uint64_t seed) {
  for (const Tensor& t : inputs) t.impl()->slot ? t.impl()->slot->grad.reset() : void();
  Tape::clear();
  Tensor out = f(inputs);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> w(out.numel());
  for (double& x : w) x = dist(rng);

  // Analytic: backward of sum(out * w).
  std::vector<float> wf(w.begin(), w.end());
  Tensor loss = sum_all(mul(out, Tensor::from_vector(out.shape(), wf)));
  loss.backward();

  GradCheckResult result;
  NoGradScope no_grad;
  for (size_t n = 0; n < inputs.size(); ++n) {
    Tensor x = inputs[n];
    if (!x.requires_grad()) continue;
    const Tensor g = x.grad();
    const std::vector<float> analytic = g.defined() ? g.to_vector() : std::vector<float>(x.numel(), 0.0f);
    float* p = x.data();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float saved = p[i];
      p[i] = saved + static_cast<float>(eps);
      const double up = weighted_sum(f(inputs), w);
      p[i] = saved - static_cast<float>(eps);
      const double down = weighted_sum(f(inputs), w);
      p[i] = saved;
      const double numeric = (up - down) / (2.0 * eps);
      const double err = std::fabs(numeric - analytic[i]);
      result.max_abs_grad = std::max(result.max_abs_grad, std::fabs(numeric));
      if (err > result.max_abs_error || std::isnan(err)) {
        result.max_abs_error = std::isnan(err) ? INFINITY : err;
        std::ostringstream os;
        os << "input " << n << ", element " << i << ": analytic " << analytic[i] << ", numeric " << numeric;
        result.worst = os.str();
      }
    }
  }
  return result;
}

}  // namespace vdit
