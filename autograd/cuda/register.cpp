#include "autograd/cuda/register.h"

namespace vdit::cuda {

void register_backend(CudaBackend& backend) {
  register_runtime(backend);
}

}  // namespace vdit::cuda
