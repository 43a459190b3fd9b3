#include "train/layer_selection.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include "autograd/check.h"

namespace vdit {

namespace {

// The value of a decimal number, or -1 when `text` is not one. Numbers past int range read as
// INT_MAX, which no block index or K reaches, so the caller's range check reports them
// (std::stoi would throw a std::out_of_range naming neither the item nor --layers).
int parse_number(const std::string& text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
    return -1;
  return text.size() > 9 ? std::numeric_limits<int>::max() : std::stoi(text);
}

int parse_block_index(const std::string& text, const std::string& item, const VDiTConfig& config,
                      const std::string& flag = "--layers") {
  const int index = parse_number(text);
  VDIT_CHECK(index >= 0, flag << ": '" << item << "' is not a block index"
                              << (flag == "--layers" ? ", range, sub-module, all, head, embeddings or auto:K" : " or range"));
  VDIT_CHECK(index < config.num_layers,
             flag << ": block " << text << " in '" << item << "' does not exist (the model has "
                  << config.num_layers << " blocks, 0-" << config.num_layers - 1 << ")");
  return index;
}

// "first-last" as the blocks it names.
std::vector<int> parse_block_range(const std::string& item, size_t dash, const VDiTConfig& config,
                                   const std::string& flag) {
  const int first = parse_block_index(item.substr(0, dash), item, config, flag);
  const int last = parse_block_index(item.substr(dash + 1), item, config, flag);
  VDIT_CHECK(first <= last, flag << ": range '" << item << "' is empty");
  std::vector<int> blocks;
  for (int b = first; b <= last; ++b) blocks.push_back(b);
  return blocks;
}

// The comma-separated items of a spec, blanks removed; an empty item is an error.
std::vector<std::string> spec_items(const std::string& spec, const std::string& flag) {
  std::vector<std::string> items;
  size_t begin = 0;
  while (begin <= spec.size()) {
    size_t end = spec.find(',', begin);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(begin, end - begin);
    item.erase(std::remove_if(item.begin(), item.end(), [](unsigned char c) { return std::isspace(c); }), item.end());
    VDIT_CHECK(!item.empty(), flag << ": empty item in '" << spec << "'");
    items.push_back(item);
    begin = end + 1;
  }
  return items;
}

// Does parameter `name` (relative to its block, e.g. "self_attn.q.weight") belong to `sub`?
bool in_submodule(const std::string& name, const std::string& sub) {
  auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  if (sub == "norms")
    return starts("norm3.") || name.find(".norm_q.") != std::string::npos ||
           name.find(".norm_k.") != std::string::npos;
  if (sub == "self_attn" || sub == "cross_attn" || sub == "ffn") return starts((sub + ".").c_str());
  if (sub == "modulation") return name == "modulation";
  return false;
}

void add_item(const std::string& item, const VDiTConfig& config, LayerSelection& selection) {
  const std::vector<ParamSpec> specs = wan_parameter_specs(config);
  if (item == "all") {
    for (const ParamSpec& s : specs) selection.names.insert(s.name);
  } else if (item == "head" || item == "embeddings") {
    for (const ParamSpec& s : specs)
      if (s.block < 0 && (s.name.rfind("head.", 0) == 0) == (item == "head")) selection.names.insert(s.name);
  } else if (item.rfind("auto:", 0) == 0) {
    const int k = parse_number(item.substr(5));
    VDIT_CHECK(k > 0 && k <= config.num_layers, "--layers: '" << item << "' needs 1 <= K <= " << config.num_layers);
    selection.auto_blocks = k;
  } else if (size_t dot = item.find('.'); dot != std::string::npos) {
    const int block = parse_block_index(item.substr(0, dot), item, config);
    const std::string sub = item.substr(dot + 1);
    const std::string prefix = "blocks." + std::to_string(block) + ".";
    size_t before = selection.names.size();
    for (const ParamSpec& s : wan_block_parameter_specs(config, block))
      if (in_submodule(s.name.substr(prefix.size()), sub)) selection.names.insert(s.name);
    VDIT_CHECK(selection.names.size() > before,
               "--layers: '" << item << "': unknown sub-module '" << sub
                             << "' (self_attn, cross_attn, ffn, modulation, norms)");
  } else if (size_t dash = item.find('-'); dash != std::string::npos) {
    for (const std::string& n : block_parameter_names(config, parse_block_range(item, dash, config, "--layers")))
      selection.names.insert(n);
  } else {
    for (const std::string& n : block_parameter_names(config, {parse_block_index(item, item, config)}))
      selection.names.insert(n);
  }
}

}  // namespace

LayerSelection parse_layer_spec(const std::string& spec, const VDiTConfig& config) {
  LayerSelection selection;
  for (const std::string& item : spec_items(spec, "--layers")) add_item(item, config, selection);
  return selection;
}

std::vector<int> parse_block_list(const std::string& spec, const VDiTConfig& config, const std::string& flag) {
  std::set<int> blocks;
  for (const std::string& item : spec_items(spec, flag)) {
    if (item == "all") {
      for (int b = 0; b < config.num_layers; ++b) blocks.insert(b);
    } else if (size_t dash = item.find('-'); dash != std::string::npos) {
      for (int b : parse_block_range(item, dash, config, flag)) blocks.insert(b);
    } else {
      blocks.insert(parse_block_index(item, item, config, flag));
    }
  }
  return {blocks.begin(), blocks.end()};
}

std::set<std::string> block_parameter_names(const VDiTConfig& config, const std::vector<int>& blocks) {
  std::set<std::string> names;
  for (int b : blocks)
    for (const ParamSpec& s : wan_block_parameter_specs(config, b)) names.insert(s.name);
  return names;
}

int first_selected_block(const std::set<std::string>& names, const VDiTConfig& config) {
  int first = static_cast<int>(config.num_layers);
  for (const ParamSpec& s : wan_parameter_specs(config))
    if (names.count(s.name)) first = std::min(first, s.block);
  return first;
}

}  // namespace vdit
