#pragma once
// Comparisons the autograd tests share: values against a float64 reference, and bit patterns
// for determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "autograd/tensor.h"

namespace vdit::testing {

// Passes when every |actual_i - expected_i| <= tolerance * max_j |expected_j|: errors are
// judged against the scale of the whole result, so elements near zero do not demand more than
// float precision can give. On failure names the worst element.
inline ::testing::AssertionResult all_close(const std::vector<float>& actual,
                                            const std::vector<double>& expected, double tolerance) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << actual.size() << " values, expected " << expected.size();
  double scale = 0.0;
  for (double e : expected) scale = std::max(scale, std::fabs(e));
  size_t worst = 0;
  double worst_error = -1.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double error = std::fabs(actual[i] - expected[i]);
    if (!(error <= worst_error)) {  // also catches NaN
      worst = i;
      worst_error = std::isnan(error) ? INFINITY : error;
    }
  }
  if (worst_error <= tolerance * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "element " << worst << ": " << actual[worst] << " vs reference " << expected[worst]
         << ", error " << worst_error << " > " << tolerance << " * scale " << scale;
}

// The exact bits of a float32 tensor's values: equal patterns mean bit-identical results.
inline std::vector<uint32_t> bit_pattern(const Tensor& t) {
  const std::vector<float> values = t.to_vector();
  std::vector<uint32_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
  return bits;
}

// fn() run with `threads` OpenMP threads: what a test of thread-count independence compares.
template <class Fn>
auto on_threads(int threads, Fn fn) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  const auto result = fn();
  omp_set_num_threads(saved);
  return result;
}

inline Tensor requiring_grad(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

}  // namespace vdit::testing
