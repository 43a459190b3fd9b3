#include "autograd/cuda/runtime.h"

#include <mutex>
#include <vector>

#include "autograd/cuda/allocator.h"
#include "autograd/cuda/memory_kernels.h"
#include "autograd/cuda/register.h"

namespace vdit::cuda {

namespace {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: a CPU-only machine, not an error
    return 0;
  }
  return count;
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  const int device = dst_device.is_cuda() ? dst_device.index : src_device.index;
  VDIT_CHECK(!(dst_device.is_cuda() && src_device.is_cuda()) || dst_device == src_device,
             "copy between " << to_string(src_device) << " and " << to_string(dst_device)
                             << " is not supported; go through the host");
  DeviceGuard guard(device);
  const cudaMemcpyKind kind = src_device.is_cpu()   ? cudaMemcpyHostToDevice
                              : dst_device.is_cpu() ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
  VDIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream(device)));
  // The host may read (or free) its side as soon as this returns.
  if (kind != cudaMemcpyDeviceToDevice) VDIT_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

void synchronize(int device) {
  DeviceGuard guard(device);
  VDIT_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

}  // namespace

cudaStream_t stream(int device) {
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mutex);
  if (streams.empty()) streams.resize(static_cast<size_t>(std::max(device_count(), 1)), nullptr);
  VDIT_CHECK(device >= 0 && device < static_cast<int>(streams.size()),
             "no CUDA device cuda:" << device);
  if (!streams[device]) {
    DeviceGuard guard(device);
    VDIT_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking));
  }
  return streams[device];
}

DeviceGuard::DeviceGuard(int device) {
  VDIT_CUDA_CHECK(cudaGetDevice(&previous_));
  changed_ = device != previous_;
  if (changed_) VDIT_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  if (changed_) cudaSetDevice(previous_);
}

void register_runtime(CudaBackend& b) {
  b.device_count = device_count;
  b.allocate = allocate;
  b.copy = copy;
  b.fill = fill;
  b.convert = convert;
  b.accumulate = accumulate;
  b.memory_stats = memory_stats;
  b.reset_memory_peak = reset_memory_peak;
  b.synchronize = synchronize;
}

}  // namespace vdit::cuda
