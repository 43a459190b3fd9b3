#pragma once
// The two key layouts of Wan2.1 checkpoints: the original release ("blocks.3.self_attn.q.weight")
// and diffusers' WanTransformer3DModel ("blocks.3.attn1.to_q.weight"). The map is a pure
// renaming: a tensor is identical (same shape, same values) under both names.
#include <string>
#include <vector>

namespace vdit {

// Both throw vdit::Error naming the key when it has no counterpart in the other layout.
std::string diffusers_to_original(const std::string& key);
std::string original_to_diffusers(const std::string& key);

// True when the names look like the diffusers layout (a name under "condition_embedder." or
// containing ".attn1."); false for the original layout and for no names at all.
bool is_diffusers_layout(const std::vector<std::string>& names);

}  // namespace vdit
