#pragma once
// The caching allocator: device memory is taken with cudaMalloc once and then reused by size,
// so a training step, allocating the same shapes over and over, makes no cudaMalloc or
// cudaFree in its steady state (both synchronise the whole device). Reuse needs no event: all
// work is ordered on the device's one stream, so a block freed by the host is free once the
// kernels queued before it have run, and any later kernel runs after those.
#include <cstddef>
#include <memory>

#include "autograd/cuda_backend.h"

namespace vdit::cuda {

std::shared_ptr<void> allocate(size_t bytes, int device);
DeviceMemoryStats memory_stats(int device);
void reset_memory_peak(int device);

}  // namespace vdit::cuda
