#include "bench/gpu_training.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

#include "autograd/cuda_backend.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "bench/harness.h"
#include "bench/random_checkpoint.h"
#include "data/latent_dataset.h"
#include "train/trainer.h"

namespace vdit::bench {

namespace {

namespace fs = std::filesystem;

const Device kGpu = Device::cuda(0);

struct Step {
  double seconds = NAN, peak_gib = NAN;  // NaN: out of memory
};

// Seconds per step (the device's work finished) and the allocator's peak over the timed steps,
// counting everything held: weights, moments, activations.
Step measure(const RetrainOptions& options) {
  try {
    Retrainer trainer(options);
    trainer.step();  // warm-up: every shape allocated once
    cuda_backend().synchronize(0);
    cuda_backend().reset_memory_peak(0);
    Step s;
    s.seconds = seconds_per_call([&] {
      trainer.step();
      cuda_backend().synchronize(0);
    }, 3, 0.0);
    s.peak_gib = cuda_backend().memory_stats(0).peak / double(1 << 30);
    return s;
  } catch (const Error& e) {  // out of memory, say: the step's recorded closures must go with it
    Tape::clear();
    report("gpu_training_error", e.what());
    return {};
  }
}

std::string figure(double value, int precision) {
  if (std::isnan(value)) return "OOM";
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << value;
  return os.str();
}

}  // namespace

std::vector<std::array<double, 4>> torch_gpu_rows(const std::string& flags,
                                                  const std::vector<std::array<int64_t, 3>>& grids,
                                                  const std::string& section) {
  std::string args = flags + " --grids";
  for (const auto& grid : grids)
    for (int64_t g : grid) args += " " + std::to_string(g);
  const std::vector<double> v = python_figures("torch_gpu.py", args, 1);
  if (v.size() != 4 * grids.size()) {
    report(section, "skipped: no PyTorch with CUDA (set VDITKIT_TORCH_PYTHON to its python3)");
    return {};
  }
  std::vector<std::array<double, 4>> rows;
  for (size_t i = 0; i < grids.size(); ++i) rows.push_back({v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]});
  return rows;
}

std::vector<TrainingFigures> torch_training_figures(const std::vector<std::array<int64_t, 3>>& grids) {
  std::vector<TrainingFigures> out;
  for (const auto& r : torch_gpu_rows("--training --runs 3", grids, "torch_training"))
    out.push_back({r[0], r[1], r[2], r[3]});
  return out;
}

void print_training_figures(const std::vector<std::array<int64_t, 3>>& grids, const std::vector<TrainingFigures>& torch) {
  const VDiTConfig config = VDiTConfig::wan_1_3b();
  const fs::path dir = fs::temp_directory_path() / "vditkit-bench-gpu-training";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_random_checkpoint((dir / "model.safetensors").string(), config);
  std::ostringstream table;
  table << "\n" << std::left << std::setw(44) << "Wan2.1-1.3B step (s, peak GiB)" << std::right << std::setw(8) << "tokens"
        << std::setw(16) << "ours" << std::setw(16) << "PyTorch" << std::setw(14) << "PyTorch/ours" << std::setw(16)
        << "memory ours/PT" << "\n";
  for (size_t i = 0; i < grids.size(); ++i) {
    const auto& g = grids[i];
    const int64_t tokens = g[0] * g[1] * g[2];
    const std::string n = std::to_string(tokens), data = (dir / ("data-" + n + ".h5")).string();
    Rng rng(5);  // one sample of the grid, a full-length context
    write_latent_dataset(data, {{rng.normal_tensor({config.in_dim, g[0] * config.patch_size[0], g[1] * config.patch_size[1],
                                                    g[2] * config.patch_size[2]}),
                                 rng.normal_tensor({config.text_len, config.text_dim}), "bench"}});
    RetrainOptions o;
    o.model = (dir / "model.safetensors").string();
    o.data = {data};
    o.out = (dir / "run").string();
    o.layers = "20";
    o.steps = 1000;
    o.lr.base_lr = 1e-5;
    o.diagnostics = false;
    o.device = kGpu;
    const Step stored = measure(o);
    o.recompute_frozen = true;
    const Step recomputed = measure(o);
    RetrainOptions t = o;
    t.recompute_frozen = false;
    t.tune_temperature = true;
    t.lr.base_lr = 1e-2;
    t.adamw.weight_decay = 0.0;
    const Step tune = measure(t);
    const std::pair<std::string, Step> steps[] = {{"retrain", stored}, {"retrain_recompute", recomputed},
                                                  {"tune_temperature", tune}};
    for (const auto& [name, s] : steps) {
      report("gpu_" + name + "_step_s_" + n, s.seconds);
      report("gpu_" + name + "_peak_gib_" + n, s.peak_gib);
    }
    const TrainingFigures* p = torch.empty() ? nullptr : &torch[i];
    auto row = [&](const std::string& name, const Step& ours, double theirs_s, double theirs_gib) {
      table << std::left << std::setw(44) << name << std::right << std::setw(8) << tokens << std::setw(16)
            << figure(ours.seconds, 3) + ", " + figure(ours.peak_gib, 1);
      if (p)
        table << std::setw(16) << figure(theirs_s, 3) + ", " + figure(theirs_gib, 1) << std::setw(13)
              << figure(theirs_s / ours.seconds, 2) << "x" << std::setw(16) << figure(ours.peak_gib / theirs_gib, 2);
      table << "\n";
    };
    row("retrain block 20, 21-29 stored", stored, p ? p->retrain_s : 0, p ? p->retrain_gib : 0);
    row("retrain block 20, 21-29 recomputed", recomputed, p ? p->retrain_s : 0, p ? p->retrain_gib : 0);
    row("tune temperatures, every block", tune, p ? p->tune_s : 0, p ? p->tune_gib : 0);
  }
  fs::remove_all(dir);
  std::cout << table.str() << std::flush;
}

}  // namespace vdit::bench
