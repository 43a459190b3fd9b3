#pragma once
// Attention restricted to each query's most probable keys, to test whether a layer that looks
// sparse (most mass in few keys) really is: its output should then barely change (issue 5,
// "sparsifiability").
#include <vector>

#include "autograd/tensor.h"
#include "layers/attention_probe.h"

namespace vdit {

// Attention output when each query keeps only its top ceil(keep_fraction * N_k) keys (by
// probability; ties broken by lower key index), renormalised: q [B, N_q, H, hd], k/v
// [B, N_k, H, hd] -> [B, N_q, H, hd]. temperature empty = 1; keep_fraction in (0, 1].
// No gradient. Streams over query blocks. On a CUDA device the output is bf16 and the selection
// is exact except in the rare cases stated in autograd/cuda/sparse_attention_kernels.cuh.
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                        const std::vector<float>& temperature, double keep_fraction);

// Keys a query keeps of n_k: ceil(keep_fraction * n_k), at least 1. The product is nudged down
// by 1e-9 before rounding up, since fractions such as 0.07 are not exact in binary (0.07 * 100
// is 7.000000000000001).
int64_t kept_keys(double keep_fraction, int64_t n_k);

// Replaces one kind of attention of every call it sees by sparse_attention (a Joint call by
// sparse_joint_attention, over its unmasked keys). When every key is kept it leaves the call
// alone: keeping all keys is the dense attention, exactly.
class SparseProbe : public AttentionProbe {
 public:
  SparseProbe(AttentionKind kind, double keep) : kind_(kind), keep_(keep) {}
  Tensor observe(const AttentionCall& call) override;

 private:
  AttentionKind kind_;
  double keep_;
};

}  // namespace vdit
