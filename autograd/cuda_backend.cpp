#include "autograd/cuda_backend.h"

#include "autograd/check.h"

namespace vdit {

#if VDITKIT_CUDA
namespace cuda {
void register_backend(CudaBackend& backend);  // autograd/cuda/register.cpp
}
#endif

namespace {

const CudaBackend& table() {
  static const CudaBackend backend = [] {
    CudaBackend b;
#if VDITKIT_CUDA
    cuda::register_backend(b);
#endif
    return b;
  }();
  return backend;
}

}  // namespace

const CudaBackend& cuda_backend() {
  VDIT_CHECK(table().device_count != nullptr,
             "this vditkit was built without CUDA: rebuild with cmake -DVDITKIT_CUDA=ON on a "
             "machine with the CUDA toolkit (see the README, 'GPUs')");
  return table();
}

bool cuda_available() { return table().device_count != nullptr && table().device_count() > 0; }

bool on_cuda(const char* op, std::initializer_list<const Tensor*> inputs) {
  const Tensor* first = nullptr;
  for (const Tensor* t : inputs) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    VDIT_CHECK(t->device() == first->device(),
               op << ": inputs on different devices (" << to_string(first->device()) << " and "
                  << to_string(t->device()) << "); copy one with to(device)");
  }
  return first && first->device().is_cuda();
}

}  // namespace vdit
