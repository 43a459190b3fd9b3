#pragma once
// A small, fully serialisable random stream (xoshiro256**, seeded through splitmix64). Its
// whole state is four words, so a checkpoint can store it and a resumed run draws exactly the
// numbers the uninterrupted run would have. Normal draws use Box-Muller without caching the
// second value, so no hidden state exists beyond the four words.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    for (uint64_t& word : state_) {  // splitmix64
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      word = z ^ (z >> 31);
    }
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  double uniform() { return to_uniform(next()); }  // [0, 1)
  double normal() {
    const uint64_t a = next();
    const uint64_t b = next();
    return box_muller(a, b);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // n << 2^64: the bias is negligible

  // normal() per element, in order. The stream's words are drawn in order (cheap); their
  // transforms (log, sqrt and cos: most of the time, ~40 ms for a 32,760-token latent, the
  // noise of every training step) run in parallel, each on its own pair: the same values.
  Tensor normal_tensor(const Shape& shape, float stddev = 1.0f) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data();
    const int64_t n = t.numel();
    constexpr int64_t kBlock = 1 << 16;
    std::vector<uint64_t> words(static_cast<size_t>(2 * std::min(n, kBlock)));
    for (int64_t begin = 0; begin < n; begin += kBlock) {
      const int64_t count = std::min(kBlock, n - begin);
      for (int64_t i = 0; i < 2 * count; ++i) words[static_cast<size_t>(i)] = next();
#pragma omp parallel for if (count > 4096) schedule(static)
      for (int64_t i = 0; i < count; ++i)
        p[begin + i] = static_cast<float>(box_muller(words[2 * i], words[2 * i + 1])) * stddev;
    }
    return t;
  }

  using State = std::array<uint64_t, 4>;
  const State& state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static double to_uniform(uint64_t word) { return static_cast<double>(word >> 11) * 0x1.0p-53; }
  // A normal value from two words of the stream, the first for the radius.
  static double box_muller(uint64_t a, uint64_t b) {
    const double u1 = 1.0 - to_uniform(a);  // (0, 1]: log is finite
    const double u2 = to_uniform(b);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  State state_{};
};

}  // namespace vdit
