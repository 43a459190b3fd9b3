#pragma once
// The tokens a block reads and writes, in every family.
#include "autograd/tensor.h"

namespace vdit {

// The video tokens [B, N, d] and, where text runs through the blocks as a stream of its own
// (Mochi-1: [B, L, d_text], undefined after its last block; CogVideoX-2b: [B, L, d]), the text.
struct TokenStreams {
  Tensor video;
  Tensor text;
};

}  // namespace vdit
