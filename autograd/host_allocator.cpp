#include "autograd/host_allocator.h"

#include <algorithm>
#include <cstdlib>

namespace vdit {

void* LargeBlockCache::allocate(size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  // The most recently released block of this size: the likeliest to be still warm.
  const auto hit = std::find_if(free_.rbegin(), free_.rend(), [bytes](const Block& b) { return b.bytes == bytes; });
  void* p = nullptr;
  if (hit != free_.rend()) {
    p = hit->p;
    free_.erase(std::next(hit).base());
    cached_ -= bytes;
  } else {
    p = source_.allocate(bytes);
    if (!p) return nullptr;
  }
  live_ += bytes;
  peak_ = std::max(peak_, live_);
  evict_beyond_bound();
  return p;
}

void LargeBlockCache::release(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_ -= bytes;
  free_.push_back({p, bytes});
  cached_ += bytes;
  evict_beyond_bound();
}

void LargeBlockCache::evict_beyond_bound() {
  size_t evicted = 0;
  while (evicted < free_.size() && live_ + cached_ > peak_ + kSlackBytes) {
    source_.release(free_[evicted].p);
    cached_ -= free_[evicted].bytes;
    ++evicted;
  }
  free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(evicted));
}

void LargeBlockCache::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Block& b : free_) source_.release(b.p);
  free_.clear();
  cached_ = 0;
}

size_t LargeBlockCache::live_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_;
}

size_t LargeBlockCache::peak_live_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

size_t LargeBlockCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

namespace {

LargeBlockCache& large_blocks() {
  // Never destroyed: tensors may outlive statics.
  static LargeBlockCache* cache = new LargeBlockCache(
      {[](size_t bytes) { return std::aligned_alloc(64, bytes); }, [](void* p) { std::free(p); }});
  return *cache;
}

}  // namespace

void* allocate_host(size_t bytes) {
  return bytes >= LargeBlockCache::kMinBytes ? large_blocks().allocate(bytes) : std::aligned_alloc(64, bytes);
}

void free_host(void* p, size_t bytes) {
  if (bytes >= LargeBlockCache::kMinBytes) large_blocks().release(p, bytes);
  else std::free(p);
}

void release_cached_host_blocks() { large_blocks().release_cached(); }

}  // namespace vdit
