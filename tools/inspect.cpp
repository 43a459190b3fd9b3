// vditkit inspect: what a checkpoint holds: its format, config, parameter count, dtypes and
// a per-block table.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "data/adapter.h"
#include "data/model_families.h"
#include "tools/command.h"

namespace vdit::cli {
namespace {

// "1.42 M" style counts.
std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1f k", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

// "blocks.3.ffn.0.weight" -> ("blocks.3", 3), as every family names its blocks' parameters;
// "patch_embedding.weight" -> ("patch_embedding", -1).
std::pair<std::string, int> group_of(const std::string& key) {
  const size_t dot = key.find('.');
  const size_t next = dot == std::string::npos ? dot : key.find('.', dot + 1);
  const std::string second = next == std::string::npos ? "" : key.substr(dot + 1, next - dot - 1);
  if (!second.empty() && second.size() <= 9 && std::all_of(second.begin(), second.end(), ::isdigit))
    return {key.substr(0, next), std::stoi(second)};
  return {key.substr(0, dot), -1};
}

// The adapter's temperatures tau = exp(log tau) as a table, one row per block and attention.
void print_adapter(const std::string& path, const Model& m) {
  const Adapter a = read_adapter(path);
  ParameterMap params;
  apply_adapter(path, a, family_model_identity(m), params);  // refuses an adapter made for another model
  std::cout << "\nadapter " << path << " (model " << a.model_identity << "): temperature tau per head\n";
  std::printf("  %-34s", "parameter");
  for (int64_t h = 0; h < m.facts().num_heads; ++h) std::printf(" %6lld", static_cast<long long>(h));
  std::printf("\n");
  for (const auto& [key, log_tau] : a.log_temperatures) {
    std::printf("  %-34s", key.substr(0, key.size() - 16).c_str());
    for (float v : log_tau.to_vector()) std::printf(" %6.3f", std::exp(v));
    std::printf("%s\n", log_tau.numel() == 1 ? "  (all heads)" : "");
  }
}

int run_inspect(int argc, char** argv) {
  po::options_description options;
  std::string model, config, adapter;
  options.add_options()
      ("model", po::value(&model)->required(), "safetensors file, index, directory or vditkit .h5")
      ("config", po::value(&config), "config.json to use instead of the one beside the weights")
      ("adapter", po::value(&adapter), "also print this temperature adapter's temperatures (tau) per block and head");
  po::positional_options_description positional;
  positional.add("model", 1);
  const po::variables_map vm = parse_options(argc, argv, "vditkit inspect MODEL [--config FILE]", options, positional);
  if (vm.empty()) return 0;
  LoadOptions load;
  load.config_path = config;
  const LoadedFamilyModel m = load_family_model(model, load);
  const ModelFacts c = m.model->facts();
  std::cout << model << ": " << c.family << ", " << m.format << "\n"
            << "shape: dim " << c.dim << ", heads " << c.num_heads << " (head_dim " << c.dim / c.num_heads << "), blocks "
            << c.num_blocks << ", in/out " << c.in_channels << "/" << c.out_channels << ", text "
            << (c.exact_text_len ? "exactly " : "up to ") << c.text_len << "x" << c.text_dim << ", patch " << c.patch[0]
            << "x" << c.patch[1] << "x" << c.patch[2] << ", attention "
            << (c.joint_attention ? "joint (video and text)" : "self + cross") << "\n"
            << "config: " << family_config_json(*m.model).dump() << "\n";
  std::map<std::string, int64_t> per_dtype, per_group_count;
  std::map<std::string, int64_t> per_group, group_block;
  std::vector<std::string> order;
  int64_t total = 0;
  const ParameterMap& params = m.model->parameters();
  for (const auto& [key, tensor] : params) {
    const auto [group, block] = group_of(key);
    group_block[group] = block;
    if (!per_group.count(group)) order.push_back(group);
    per_group[group] += tensor.numel();
    per_group_count[group] += 1;
    per_dtype[m.dtypes.at(key)] += tensor.numel();
    total += tensor.numel();
  }
  std::cout << "parameters: " << total << " (" << human_count(total) << ") in " << params.size() << " tensors;";
  for (const auto& [dtype, n] : per_dtype) std::cout << " " << dtype << " " << human_count(n);
  std::cout << "\n\n  group               tensors  parameters\n";
  // Blocks in numeric order, then everything else.
  std::sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    const int ba = group_block[a], bb = group_block[b];
    if ((ba >= 0) != (bb >= 0)) return ba < 0;
    return ba >= 0 ? ba < bb : a < b;
  });
  for (const std::string& g : order) {
    std::printf("  %-18s %8lld  %10lld\n", g.c_str(), static_cast<long long>(per_group_count[g]),
                static_cast<long long>(per_group[g]));
  }
  if (!adapter.empty()) print_adapter(adapter, *m.model);
  return 0;
}

const RegisterCommand reg("inspect", "print a model's config, parameter count, dtypes and blocks", run_inspect);

}  // namespace
}  // namespace vdit::cli
