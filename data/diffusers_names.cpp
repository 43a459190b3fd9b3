#include "data/diffusers_names.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>
#include <vector>

#include "autograd/check.h"

namespace vdit {

namespace {

// The parameters a renamed module holds.
enum class Leaves { WeightBias, Weight, Itself };

struct Rename {
  const char* original;
  const char* diffusers;
  Leaves leaves;
};

// diffusers scripts/convert_wan_to_diffusers.py (TRANSFORMER_KEYS_RENAME_DICT), written out as
// whole module names instead of substring replacements, so that an unknown key is an error
// rather than a key renamed by accident.
constexpr Rename kTopLevel[] = {
    {"patch_embedding", "patch_embedding", Leaves::WeightBias},
    {"text_embedding.0", "condition_embedder.text_embedder.linear_1", Leaves::WeightBias},
    {"text_embedding.2", "condition_embedder.text_embedder.linear_2", Leaves::WeightBias},
    {"time_embedding.0", "condition_embedder.time_embedder.linear_1", Leaves::WeightBias},
    {"time_embedding.2", "condition_embedder.time_embedder.linear_2", Leaves::WeightBias},
    {"time_projection.1", "condition_embedder.time_proj", Leaves::WeightBias},
    {"head.modulation", "scale_shift_table", Leaves::Itself},
    {"head.head", "proj_out", Leaves::WeightBias},
    // Image-to-video models only (CLIP image embedding; emb_pos in first-last-frame models).
    {"img_emb.proj.0", "condition_embedder.image_embedder.norm1", Leaves::WeightBias},
    {"img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj", Leaves::WeightBias},
    {"img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2", Leaves::WeightBias},
    {"img_emb.proj.4", "condition_embedder.image_embedder.norm2", Leaves::WeightBias},
    {"img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed", Leaves::Itself},
};

// Inside "blocks.<i>.". scale_shift_table is the modulation table itself: same [1, 6, dim]
// values, added to the projected time embedding and chunked in the same order (shift, scale,
// gate for self-attention, then for the FFN); likewise the head's [1, 2, dim] (shift, scale).
constexpr Rename kBlock[] = {
    {"modulation", "scale_shift_table", Leaves::Itself},
    {"self_attn.q", "attn1.to_q", Leaves::WeightBias},
    {"self_attn.k", "attn1.to_k", Leaves::WeightBias},
    {"self_attn.v", "attn1.to_v", Leaves::WeightBias},
    {"self_attn.o", "attn1.to_out.0", Leaves::WeightBias},
    {"self_attn.norm_q", "attn1.norm_q", Leaves::Weight},
    {"self_attn.norm_k", "attn1.norm_k", Leaves::Weight},
    {"cross_attn.q", "attn2.to_q", Leaves::WeightBias},
    {"cross_attn.k", "attn2.to_k", Leaves::WeightBias},
    {"cross_attn.v", "attn2.to_v", Leaves::WeightBias},
    {"cross_attn.o", "attn2.to_out.0", Leaves::WeightBias},
    {"cross_attn.norm_q", "attn2.norm_q", Leaves::Weight},
    {"cross_attn.norm_k", "attn2.norm_k", Leaves::Weight},
    {"cross_attn.k_img", "attn2.add_k_proj", Leaves::WeightBias},
    {"cross_attn.v_img", "attn2.add_v_proj", Leaves::WeightBias},
    {"cross_attn.norm_k_img", "attn2.norm_added_k", Leaves::Weight},
    // The affine LayerNorm before cross-attention. The original numbers its norms in creation
    // order (norm1, norm3, norm2 along the block), diffusers in order of use; the other two
    // norms have no parameters in either layout.
    {"norm3", "norm2", Leaves::WeightBias},
    {"ffn.0", "ffn.net.0.proj", Leaves::WeightBias},
    {"ffn.2", "ffn.net.2", Leaves::WeightBias},
};

using NameMap = std::unordered_map<std::string, std::string>;

struct Direction {
  const char* from;  // the layout the keys come from, for messages
  const char* to;
  NameMap top_level, block;
};

std::vector<std::string> leaf_suffixes(Leaves leaves) {
  switch (leaves) {
    case Leaves::WeightBias: return {".weight", ".bias"};
    case Leaves::Weight: return {".weight"};
    case Leaves::Itself: return {""};
  }
  return {};
}

template <size_t N>
NameMap expand(const Rename (&table)[N], bool to_diffusers) {
  NameMap map;
  for (const Rename& r : table) {
    const std::string from = to_diffusers ? r.original : r.diffusers;
    const std::string to = to_diffusers ? r.diffusers : r.original;
    for (const std::string& leaf : leaf_suffixes(r.leaves)) map[from + leaf] = to + leaf;
  }
  return map;
}

const Direction& direction(bool to_diffusers) {
  static const Direction forward{"original Wan", "diffusers", expand(kTopLevel, true), expand(kBlock, true)};
  static const Direction backward{"diffusers", "original Wan", expand(kTopLevel, false), expand(kBlock, false)};
  return to_diffusers ? forward : backward;
}

// Length of a leading "blocks.<digits>." (both layouts number blocks alike), or 0.
size_t block_prefix_length(const std::string& key) {
  const std::string blocks = "blocks.";
  if (key.compare(0, blocks.size(), blocks) != 0) return 0;
  size_t end = blocks.size();
  while (end < key.size() && std::isdigit(static_cast<unsigned char>(key[end]))) ++end;
  return end > blocks.size() && end < key.size() && key[end] == '.' ? end + 1 : 0;
}

std::string translate(const std::string& key, const Direction& d) {
  const size_t prefix = block_prefix_length(key);
  const NameMap& map = prefix ? d.block : d.top_level;
  auto it = map.find(key.substr(prefix));
  VDIT_CHECK(it != map.end(), d.from << " key '" << key << "' has no " << d.to << " counterpart");
  return key.substr(0, prefix) + it->second;
}

}  // namespace

std::string diffusers_to_original(const std::string& key) { return translate(key, direction(false)); }

std::string original_to_diffusers(const std::string& key) { return translate(key, direction(true)); }

bool is_diffusers_layout(const std::vector<std::string>& names) {
  return std::any_of(names.begin(), names.end(), [](const std::string& name) {
    return name.rfind("condition_embedder.", 0) == 0 || name.find(".attn1.") != std::string::npos;
  });
}

}  // namespace vdit
