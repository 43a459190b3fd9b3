// Writes the seed corpora of the fuzz targets into DIR/<target>/ (fuzz/corpus/ is its output,
// committed): valid files of each format, as small as the formats allow, so that the fuzzer
// starts from inputs that reach deep into each reader. Usage: vditkit-fuzz-corpus DIR
#include <iostream>

#include "data/adapter.h"
#include "data/latent_dataset.h"
#include "data/model_config.h"
#include "data/model_io.h"
#include "data/safetensors.h"
#include "fuzz/fuzz_input.h"
#include "layers/init.h"
#include "train/run_state.h"

namespace {

using namespace vdit;
namespace fs = std::filesystem;

// The smallest config validate() accepts with two heads: head_dim 6 splits RoPE over 3 axes.
VDiTConfig seed_config() {
  return {.dim = 12, .ffn_dim = 16, .freq_dim = 8, .num_heads = 2, .num_layers = 1, .in_dim = 2, .out_dim = 2,
          .text_dim = 4, .text_len = 3};
}

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string joined(const std::vector<std::string>& files) {
  std::string out;
  for (size_t i = 0; i < files.size(); ++i) out += (i ? std::string(fuzz::kFileSeparator) : "") + files[i];
  return out;
}

void safetensors_seeds(const fs::path& dir, const fs::path& tmp) {
  Rng rng(1);
  const Tensor a = rng.normal_tensor({2, 3}), b = rng.normal_tensor({4});
  write_safetensors((tmp / "f32.safetensors").string(), {{"a", a}, {"b", b}}, SafetensorsDType::F32,
                    {{"format", "pt"}});
  write_safetensors((tmp / "bf16.safetensors").string(), {{"c", a}}, SafetensorsDType::BF16);
  fuzz::write_file(dir / "f32", contents(tmp / "f32.safetensors"));
  fuzz::write_file(dir / "bf16", contents(tmp / "bf16.safetensors"));
  const std::string index =
      R"({"metadata": {"total_size": 40}, "weight_map": {"a": "shard-1.safetensors", "b": "shard-1.safetensors", )"
      R"("c": "shard-2.safetensors"}})";
  fuzz::write_file(dir / "sharded", joined({index, contents(tmp / "f32.safetensors"), contents(tmp / "bf16.safetensors")}));
}

void config_seeds(const fs::path& dir) {
  const VDiTConfig c = seed_config();
  fuzz::write_file(dir / "original", config_to_json(c).dump(1));
  fuzz::write_file(dir / "diffusers", config_to_diffusers_json(c).dump(1));
  // Partial: what is missing is read off the shapes that follow.
  nlohmann::json shapes;
  for (const ParamSpec& spec : wan_parameter_specs(c)) shapes[spec.name] = spec.shape;
  fuzz::write_file(dir / "inferred", joined({R"({"num_heads": 2, "model_type": "t2v"})", shapes.dump()}));
}

void model_seed(const fs::path& dir, const fs::path& tmp) {
  save_model((tmp / "model.h5").string(), seed_config(), init_wan_parameters(seed_config(), 1), ModelFormat::H5);
  fuzz::write_file(dir / "model", contents(tmp / "model.h5"));
}

void adapter_seed(const fs::path& dir, const fs::path& tmp) {
  Adapter adapter;
  adapter.model_identity = "0123456789abcdef";
  adapter.log_temperatures[log_temperature_key(0)] = Tensor::full({2}, 0.25f);
  adapter.log_temperatures[log_temperature_key(0, "cross_attn")] = Tensor::full({1}, -0.5f);
  write_adapter((tmp / "adapter.h5").string(), adapter);
  fuzz::write_file(dir / "adapter", contents(tmp / "adapter.h5"));
}

void dataset_seed(const fs::path& dir, const fs::path& tmp) {
  Rng rng(2);
  std::vector<LatentSample> samples;
  for (int i = 0; i < 2; ++i)
    samples.push_back({rng.normal_tensor({2, 1, 2, 2}), rng.normal_tensor({2, 4}), "sample " + std::to_string(i)});
  write_latent_dataset((tmp / "data.h5").string(), samples);
  fuzz::write_file(dir / "dataset", contents(tmp / "data.h5"));
  // A padded caption: only a file with a context mask reaches the mask's checks.
  samples[1].context_mask = Tensor::from_vector({2}, {1, 0});
  write_latent_dataset((tmp / "masked.h5").string(), samples);
  fuzz::write_file(dir / "dataset-masked", contents(tmp / "masked.h5"));
}

void run_state_seed(const fs::path& dir, const fs::path& tmp) {
  RunState state;
  state.step = 6;
  state.sigma_rng = Rng(3).state();
  state.noise_rng = Rng(4).state();
  state.data_rng = Rng(5).state();
  state.epoch = 1;
  state.cursor = 2;
  state.order = {2, 0, 1};
  state.smoothed_loss = 0.75;
  state.run_config = R"({"layers":"1","steps":6})";
  state.save((tmp / "state").string());
  fuzz::write_file(dir / "state", contents(tmp / "state"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: vditkit-fuzz-corpus DIR\n";
    return 2;
  }
  const fs::path out = argv[1], tmp = fuzz::scratch_dir();
  auto target = [&](const char* name) {
    fs::create_directories(out / name);
    return out / name;
  };
  safetensors_seeds(target("fuzz_safetensors"), tmp);
  config_seeds(target("fuzz_config"));
  model_seed(target("fuzz_model_h5"), tmp);
  adapter_seed(target("fuzz_adapter"), tmp);
  dataset_seed(target("fuzz_latent_dataset"), tmp);
  run_state_seed(target("fuzz_run_state"), tmp);
  std::cout << "wrote the seed corpora into " << out << "\n";
  return 0;
}
