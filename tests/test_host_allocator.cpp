// The large-block cache (autograd/host_allocator.h) on allocation patterns of a 32,760-token
// Wan2.1-1.3B block, run through a fake source that hands out addresses without memory: a
// repeated step must find every block cached, and live + cached bytes must never exceed the
// peak of live bytes by more than kSlackBytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "autograd/host_allocator.h"

namespace vdit {
namespace {

constexpr size_t kTokens = 32760, kDim = 1536, kFfn = 8960;
constexpr size_t kActivation = kTokens * kDim * 4;  // 201 MB
constexpr size_t kHidden = kTokens * kFfn * 4;      // 1.17 GB, more than kSlackBytes

// Counts fresh blocks; checks after every call that live + cached stays within the bound.
struct CountingCache {
  int64_t fresh = 0, returned = 0, next_address = 0;
  LargeBlockCache cache{{[this](size_t) {
                           ++fresh;
                           return reinterpret_cast<void*>(++next_address * 64);
                         },
                         [this](void*) { ++returned; }}};

  void* allocate(size_t bytes) {
    void* p = cache.allocate(bytes);
    expect_within_bound();
    return p;
  }
  void release(void* p, size_t bytes) {
    cache.release(p, bytes);
    expect_within_bound();
  }
  void expect_within_bound() const {
    EXPECT_LE(cache.live_bytes() + cache.cached_bytes(), cache.peak_live_bytes() + LargeBlockCache::kSlackBytes);
  }
};

// One block's forward and backward, reduced to its large allocations: the forward keeps
// q, k, v, the attention output and the FFN hidden state for the backward and frees a
// temporary per sub-layer; the backward frees them in reverse, each after allocating the
// gradient that replaces it.
void block_step(CountingCache& c, size_t hidden) {
  std::vector<std::pair<void*, size_t>> kept;
  for (size_t bytes : {kActivation, kActivation, kActivation, kActivation, hidden}) {
    c.release(c.allocate(bytes), bytes);  // a temporary
    kept.push_back({c.allocate(bytes), bytes});
  }
  while (!kept.empty()) {
    const auto [p, bytes] = kept.back();
    kept.pop_back();
    void* grad = c.allocate(bytes);
    c.release(p, bytes);
    c.release(grad, bytes);
  }
}

TEST(LargeBlockCache, RepeatedLongSequenceStepTakesNoFreshBlock) {
  CountingCache c;
  block_step(c, kHidden);
  const int64_t first_step = c.fresh;
  EXPECT_GT(first_step, 0);
  for (int step = 0; step < 3; ++step) block_step(c, kHidden);
  EXPECT_EQ(c.fresh, first_step);  // a 512 MiB cap would refetch the 1.17 GB blocks every step
  EXPECT_EQ(c.cache.live_bytes(), 0u);
}

TEST(LargeBlockCache, NewSizesPushOutTheOldestWithinTheBound) {
  CountingCache c;
  block_step(c, kHidden);
  const size_t peak = c.cache.peak_live_bytes();
  for (int step = 0; step < 3; ++step) block_step(c, kHidden / 2);  // another token count
  EXPECT_EQ(c.cache.peak_live_bytes(), peak);
  EXPECT_LE(c.cache.cached_bytes(), peak + LargeBlockCache::kSlackBytes);
  // The second size is now what the cache holds: a further step of it is all hits.
  const int64_t fresh = c.fresh;
  block_step(c, kHidden / 2);
  EXPECT_EQ(c.fresh, fresh);
}

TEST(LargeBlockCache, ReleaseCachedHandsEveryKeptBlockBack) {
  CountingCache c;
  block_step(c, kHidden);
  EXPECT_GT(c.cache.cached_bytes(), 0u);
  c.cache.release_cached();
  EXPECT_EQ(c.cache.cached_bytes(), 0u);
  EXPECT_EQ(c.returned, c.fresh);  // nothing is live after a step
  const int64_t first_step = c.fresh;
  block_step(c, kHidden);
  EXPECT_EQ(c.fresh, 2 * first_step);  // the next step finds no block kept
}

TEST(LargeBlockCache, FreeingABlockLargerThanTheSlackKeepsTheOthers) {
  CountingCache c;
  void* a = c.allocate(kActivation);
  void* b = c.allocate(kActivation);
  void* hidden = c.allocate(kHidden);
  c.release(a, kActivation);
  c.release(b, kActivation);
  c.release(hidden, kHidden);
  const int64_t fresh = c.fresh;
  c.release(c.allocate(kActivation), kActivation);
  c.release(c.allocate(kHidden), kHidden);
  EXPECT_EQ(c.fresh, fresh);
}

}  // namespace
}  // namespace vdit
