#pragma once
// Host memory for tensor storage. Activations and gradients of tens of MB to GBs are allocated
// and freed every step. glibc serves such blocks with mmap and returns them with munmap, so
// every step would fault (and the kernel zero) every page again: 10% of a Wan block's forward
// and backward. Keeping every freed block in the heap instead (mmap off) costs memory: freed
// holes the next sizes do not fit. So large blocks are kept in a cache keyed by exact size,
// which a training step or a diagnosis, allocating the same shapes over and over, reuses warm.
//
// How much it keeps scales with the working set: live + cached bytes stay within the peak of
// live bytes plus kSlackBytes, so the cache never raises the process's memory high-water mark
// by more than kSlackBytes over what the tensors themselves needed. Within that, a step that
// repeats the previous one's sizes finds every block cached, however large the activations
// (a 32,760-token 1.3B block has 1.2 GB ones); the slack absorbs the blocks a step holds
// beyond its peak because a freed size did not fit the next request. When the cache must let
// go, the blocks released longest ago go first.
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

namespace vdit {

// Where the cache gets fresh blocks and returns evicted ones (tests pass a counting fake).
struct BlockSource {
  std::function<void*(size_t bytes)> allocate;  // null when out of memory
  std::function<void(void*)> release;
};

class LargeBlockCache {
 public:
  static constexpr size_t kMinBytes = size_t{4} << 20;      // smaller blocks bypass the cache
  static constexpr size_t kSlackBytes = size_t{512} << 20;  // beyond the peak of live bytes

  explicit LargeBlockCache(BlockSource source) : source_(std::move(source)) {}

  void* allocate(size_t bytes);  // a cached block of exactly `bytes`, else a fresh one
  void release(void* p, size_t bytes);
  // Hands every cached block back to the source (vditkit-bench between cases, so that one case's
  // memory figure holds none of the blocks another left).
  void release_cached();

  size_t live_bytes() const;
  size_t peak_live_bytes() const;
  size_t cached_bytes() const;

 private:
  struct Block {
    void* p;
    size_t bytes;
  };
  void evict_beyond_bound();  // with mutex_ held

  BlockSource source_;
  mutable std::mutex mutex_;
  std::vector<Block> free_;  // in the order they were released, oldest first
  size_t live_ = 0, peak_ = 0, cached_ = 0;
};

// 64-byte aligned storage of `bytes` (a multiple of 64); blocks of LargeBlockCache::kMinBytes
// and more go through the process's one cache. free_host takes the same size back.
void* allocate_host(size_t bytes);
void free_host(void* p, size_t bytes);
// The process cache's LargeBlockCache::release_cached.
void release_cached_host_blocks();

}  // namespace vdit
