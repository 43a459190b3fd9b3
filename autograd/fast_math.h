#pragma once
// exp written so that the compiler vectorises loops over it (std::exp does not vectorise
// without -ffast-math). Attention evaluates it N^2 times per head, forward and backward.
#include <bit>
#include <cstdint>

namespace vdit {

// e^x to within 2 ulp for x in [-87, 88]; 0 below (including -inf), saturating above.
// e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln2 / 2; e^r from its Taylor series to
// degree 7, whose truncation error (r^8 / 8! < 6e-9) is below float precision.
inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // ln 2 split so that n * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifted = xc * kLog2e + kRound;  // exactly kRound + n: its low bits hold n
  const float n = shifted - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // n as an integer from those bits, not by casting n: the cast is undefined for a NaN x
  // (whose result is NaN either way, through p).
  const int32_t n_int = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(kRound);
  const float two_n = std::bit_cast<float>(static_cast<uint32_t>(n_int + 127) << 23);
  return x < -87.0f ? 0.0f : p * two_n;
}

}  // namespace vdit

namespace vdit {

// Reductions over a row, written with independent lanes so that they vectorise without
// -ffast-math (which would license reassociating a single running sum or max).
constexpr int kLanes = 16;

inline float row_max(const float* x, int64_t n, float init) {
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = init;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
  float m = init;
  for (int l = 0; l < kLanes; ++l) m = lane[l] > m ? lane[l] : m;
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

inline float row_sum(const float* x, int64_t n) {
  float lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += x[j + l];
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  for (; j < n; ++j) s += x[j];
  return s;
}

}  // namespace vdit
