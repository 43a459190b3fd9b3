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

int parse_block_index(const std::string& text, const std::string& item, const Model& model,
                      const std::string& flag = "--layers") {
  const int index = parse_number(text);
  const int blocks = model.facts().num_blocks;
  VDIT_CHECK(index >= 0, flag << ": '" << item << "' is not a block index"
                              << (flag == "--layers" ? ", range, sub-module, all, head, embeddings or auto:K" : " or range"));
  VDIT_CHECK(index < blocks, flag << ": block " << text << " in '" << item << "' does not exist (the model has "
                                  << blocks << " blocks, 0-" << blocks - 1 << ")");
  return index;
}

// "first-last" as the blocks it names.
std::vector<int> parse_block_range(const std::string& item, size_t dash, const Model& model,
                                   const std::string& flag) {
  const int first = parse_block_index(item.substr(0, dash), item, model, flag);
  const int last = parse_block_index(item.substr(dash + 1), item, model, flag);
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

// "blocks.3.ffn.0.weight" -> "ffn.0.weight" (every family names block parameters <blocks>.<i>.<rest>).
std::string name_in_block(const std::string& name) {
  const size_t first = name.find('.');
  return name.substr(name.find('.', first + 1) + 1);
}

// The names a block's sub-modules go by, for errors: "self_attn, cross_attn, ffn".
std::string submodule_list(const Model& model) {
  std::string list;
  for (const std::string& sub : model.submodules()) list += (list.empty() ? "" : ", ") + sub;
  return list;
}

void add_item(const std::string& item, const Model& model, LayerSelection& selection) {
  const std::vector<ParamSpec> specs = model.parameter_specs();
  const int blocks = model.facts().num_blocks;
  if (item == "all") {
    for (const ParamSpec& s : specs) selection.names.insert(s.name);
  } else if (item == "head" || item == "embeddings") {
    for (const ParamSpec& s : specs)
      if (s.block < 0 && model.in_head(s.name) == (item == "head")) selection.names.insert(s.name);
  } else if (item.rfind("auto:", 0) == 0) {
    const int k = parse_number(item.substr(5));
    VDIT_CHECK(k > 0 && k <= blocks, "--layers: '" << item << "' needs 1 <= K <= " << blocks);
    selection.auto_blocks = k;
  } else if (size_t dot = item.find('.'); dot != std::string::npos) {
    const int block = parse_block_index(item.substr(0, dot), item, model);
    const std::string sub = item.substr(dot + 1);
    size_t before = selection.names.size();
    for (const ParamSpec& s : specs)
      if (s.block == block && model.in_submodule(name_in_block(s.name), sub)) selection.names.insert(s.name);
    VDIT_CHECK(selection.names.size() > before,
               "--layers: '" << item << "': unknown sub-module '" << sub << "' (" << submodule_list(model) << ")");
  } else if (size_t dash = item.find('-'); dash != std::string::npos) {
    for (const std::string& n : block_parameter_names(model, parse_block_range(item, dash, model, "--layers")))
      selection.names.insert(n);
  } else {
    for (const std::string& n : block_parameter_names(model, {parse_block_index(item, item, model)}))
      selection.names.insert(n);
  }
}

}  // namespace

LayerSelection parse_layer_spec(const std::string& spec, const Model& model) {
  LayerSelection selection;
  for (const std::string& item : spec_items(spec, "--layers")) add_item(item, model, selection);
  return selection;
}

std::vector<int> parse_block_list(const std::string& spec, const Model& model, const std::string& flag) {
  std::set<int> blocks;
  for (const std::string& item : spec_items(spec, flag)) {
    if (item == "all") {
      for (int b = 0; b < model.facts().num_blocks; ++b) blocks.insert(b);
    } else if (size_t dash = item.find('-'); dash != std::string::npos) {
      for (int b : parse_block_range(item, dash, model, flag)) blocks.insert(b);
    } else {
      blocks.insert(parse_block_index(item, item, model, flag));
    }
  }
  return {blocks.begin(), blocks.end()};
}

std::set<std::string> block_parameter_names(const Model& model, const std::vector<int>& blocks) {
  const std::set<int> wanted(blocks.begin(), blocks.end());
  std::set<std::string> names;
  for (const ParamSpec& s : model.parameter_specs())
    if (wanted.count(s.block)) names.insert(s.name);
  return names;
}

int first_selected_block(const std::set<std::string>& names, const Model& model) {
  int first = model.facts().num_blocks;
  for (const ParamSpec& s : model.parameter_specs())
    if (names.count(s.name)) first = std::min(first, s.block);
  return first;
}

}  // namespace vdit
