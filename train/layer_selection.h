#pragma once
// Which parameters a run trains: the `--layers` specification.
//
//   3,19        blocks 3 and 19          10-12       blocks 10, 11 and 12
//   3.ffn       one sub-module of block 3, by the family's names (Model::submodules: Wan2.1's
//               self_attn, cross_attn, ffn, modulation, norms)
//   head        the output head          embeddings  everything else outside the blocks
//   all         every parameter (training from scratch)
//   auto:K      the K blocks the attention diagnostics rank worst (resolved by the caller)
#include <set>
#include <string>
#include <vector>

#include "layers/model.h"

namespace vdit {

struct LayerSelection {
  std::set<std::string> names;  // parameter names, resolved
  int auto_blocks = 0;          // K of auto:K, still to be ranked and added by the caller
};

LayerSelection parse_layer_spec(const std::string& spec, const Model& model);

// Block indices only ("3,19", "10-12", "all"), sorted and distinct, for flags such as
// --blocks; errors name `flag`.
std::vector<int> parse_block_list(const std::string& spec, const Model& model, const std::string& flag);

// The parameter names of whole blocks, for resolving auto:K once blocks are ranked.
std::set<std::string> block_parameter_names(const Model& model, const std::vector<int>& blocks);

// The lowest block index any selected parameter belongs to, or -1 if only parameters outside
// the blocks are selected (and the block count when nothing is).
int first_selected_block(const std::set<std::string>& names, const Model& model);

}  // namespace vdit
