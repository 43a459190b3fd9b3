#pragma once
// The CUDA runtime as the kernels see it: error checks that become vdit::Error, the one stream
// per device that every kernel and copy is ordered on, and a guard that selects a device.
#include <cuda_runtime.h>

#include "autograd/check.h"

#define VDIT_CUDA_CHECK(call)                                                             \
  do {                                                                                    \
    const cudaError_t vdit_cuda_status_ = (call);                                         \
    VDIT_CHECK(vdit_cuda_status_ == cudaSuccess,                                          \
               "CUDA error: " << cudaGetErrorString(vdit_cuda_status_) << " (" #call ")"); \
  } while (0)

// After a kernel launch: a bad configuration is reported at once, not at the next sync.
#define VDIT_CUDA_CHECK_LAUNCH() VDIT_CUDA_CHECK(cudaPeekAtLastError())

namespace vdit::cuda {

// The stream of `device`, created on first use. One stream per device: kernels, copies and
// the allocator's reuse of freed blocks are all ordered on it, so no event is ever needed.
cudaStream_t stream(int device);

// Makes `device` current for this scope (kernel launches and cudaMalloc go to it).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Grid size for a grid-stride loop over n elements.
inline unsigned blocks_for(int64_t n, int threads = 256) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace vdit::cuda
