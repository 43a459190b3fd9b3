// vditkit inspect: what a checkpoint holds: its format, config, parameter count, dtypes and
// a per-block table.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "data/adapter.h"
#include "data/model_io.h"
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

// "blocks.3.ffn.0.weight" -> "blocks.3"; "patch_embedding.weight" -> "patch_embedding".
std::string group_of(const std::string& key) {
  const size_t dot = key.find('.');
  if (key.rfind("blocks.", 0) == 0) return key.substr(0, key.find('.', dot + 1));
  return key.substr(0, dot);
}

// The adapter's temperatures tau = exp(log tau) as a table, one row per block and attention.
void print_adapter(const std::string& path, const LoadedModel& m) {
  const Adapter a = read_adapter(path);
  ParameterMap params = m.params;
  apply_adapter(path, a, model_identity(m.config, params), params);  // refuses an adapter made for another model
  std::cout << "\nadapter " << path << " (model " << a.model_identity << "): temperature tau per head\n";
  std::printf("  %-26s", "parameter");
  for (int64_t h = 0; h < m.config.num_heads; ++h) std::printf(" %6lld", static_cast<long long>(h));
  std::printf("\n");
  for (const auto& [key, log_tau] : a.log_temperatures) {
    std::printf("  %-26s", key.substr(0, key.size() - 16).c_str());
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
  const LoadedModel m = load_model(model, load);
  const VDiTConfig& c = m.config;
  std::cout << model << ": " << m.format << "\n"
            << "config: dim " << c.dim << ", ffn_dim " << c.ffn_dim << ", heads " << c.num_heads << " (head_dim "
            << c.head_dim() << "), blocks " << c.num_layers << ", in/out " << c.in_dim << "/" << c.out_dim
            << ", text " << c.text_len << "x" << c.text_dim << ", freq_dim " << c.freq_dim << ", patch "
            << c.patch_size[0] << "x" << c.patch_size[1] << "x" << c.patch_size[2] << ", eps " << c.eps
            << ", qk_norm " << c.qk_norm << ", cross_attn_norm " << c.cross_attn_norm << "\n";
  std::map<std::string, int64_t> per_dtype, per_group_count;
  std::map<std::string, int64_t> per_group;
  std::vector<std::string> order;
  int64_t total = 0;
  for (const auto& [key, tensor] : m.params) {
    const std::string group = group_of(key);
    if (!per_group.count(group)) order.push_back(group);
    per_group[group] += tensor.numel();
    per_group_count[group] += 1;
    per_dtype[m.dtypes.at(key)] += tensor.numel();
    total += tensor.numel();
  }
  std::cout << "parameters: " << total << " (" << human_count(total) << ") in " << m.params.size() << " tensors;";
  for (const auto& [dtype, n] : per_dtype) std::cout << " " << dtype << " " << human_count(n);
  std::cout << "\n\n  group               tensors  parameters\n";
  // Blocks in numeric order, then everything else.
  std::sort(order.begin(), order.end(), [](const std::string& a, const std::string& b) {
    const bool ba = a.rfind("blocks.", 0) == 0, bb = b.rfind("blocks.", 0) == 0;
    if (ba != bb) return !ba;
    if (ba) return std::stoi(a.substr(7)) < std::stoi(b.substr(7));
    return a < b;
  });
  for (const std::string& g : order) {
    std::printf("  %-18s %8lld  %10lld\n", g.c_str(), static_cast<long long>(per_group_count[g]),
                static_cast<long long>(per_group[g]));
  }
  if (!adapter.empty()) print_adapter(adapter, m);
  return 0;
}

const RegisterCommand reg("inspect", "print a model's config, parameter count, dtypes and blocks", run_inspect);

}  // namespace
}  // namespace vdit::cli
