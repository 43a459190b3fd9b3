#include "autograd/cuda/register.h"

namespace vdit::cuda {

void register_backend(CudaBackend& backend) {
  register_runtime(backend);
  register_elementwise(backend);
  register_shape(backend);
  register_reduce(backend);
  register_norm(backend);
  register_rope(backend);
  register_optim(backend);
  register_linear(backend);
  register_attention(backend);
}

}  // namespace vdit::cuda
