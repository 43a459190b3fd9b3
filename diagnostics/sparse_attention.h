#pragma once
// Attention restricted to each query's most probable keys, to test whether a layer that looks
// sparse (most mass in few keys) really is: its output should then barely change (issue 5,
// "sparsifiability").
#include <vector>

#include "autograd/tensor.h"

namespace vdit {

// Attention output when each query keeps only its top ceil(keep_fraction * N_k) keys (by
// probability; ties broken by lower key index), renormalised: q [B, N_q, H, hd], k/v
// [B, N_k, H, hd] -> [B, N_q, H, hd]. temperature empty = 1; keep_fraction in (0, 1].
// No gradient. Streams over query blocks. On a CUDA device the output is bf16 and the selection
// is exact except in the rare cases stated in autograd/cuda/sparse_attention_kernels.cuh.
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                        const std::vector<float>& temperature, double keep_fraction);

}  // namespace vdit
