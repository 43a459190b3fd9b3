#pragma once
// A stand-in for a real text encoder (Wan uses umT5), so that clips with captions make a
// text-conditioned dataset without downloading one: each lower-cased word maps to a fixed
// random vector, one context row per word. The vectors carry no meaning beyond telling words
// apart, which is all the generated clips' captions need; a model trained on them must be
// given contexts from this same table (same text_dim and seed).
#include <cstdint>
#include <string>

#include "autograd/tensor.h"

namespace vdit {

// Context [min(words, text_len), text_dim] for `caption`: words are its runs of letters and
// digits, lower-cased; each row is the word's vector, N(0, 1) entries drawn from a seed that
// hashes the word with `seed`, so every word (none is unknown) has one and every process
// agrees on it. An empty caption gives zero rows: the unconditional context.
Tensor embed_caption(const std::string& caption, int64_t text_dim, int64_t text_len, uint64_t seed = 0);

}  // namespace vdit
