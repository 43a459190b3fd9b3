#pragma once
// What the attention statistics need from an attention call as a probe sees it
// (layers/attention_probe.h): one batch row's heads, the per-head temperatures, the logit scale.
#include <vector>

#include "layers/attention_probe.h"

namespace vdit {

// Row `row` of a batched tensor [B, ...] as [1, ...], detached.
Tensor batch_row(const Tensor& t, int64_t row);

// Row `row` of q, k or v [B, N, H, hd] as the statistics take it, [N, H, hd], detached.
Tensor sample_heads(const Tensor& t, int64_t row = 0);

// The call's temperatures, one per head, on the host; empty when there are none (tau = 1).
std::vector<float> temperatures(const AttentionOptions& options, int64_t heads);

// The logit scale the attention uses: its own, or 1 / sqrt(hd) for queries q [B, N, H, hd].
float attention_scale(const AttentionOptions& options, const Tensor& q);

}  // namespace vdit
