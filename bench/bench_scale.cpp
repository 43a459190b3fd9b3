// Data-parallel scaling (issue: data-parallel retraining): the throughput of one `vditkit
// retrain` run on 1 rank and on N ranks (mpirun), and the time each step spends in the
// gradient sum across ranks, read from the runs' own logs.
//
// CPU (default): N = 2 ranks of T/2 threads on the same global batch as 1 rank of T threads
// (equal total threads: efficiency = N-rank throughput / 1-rank throughput) and as 1 rank of
// T/2 threads (scaling = N-rank throughput / (N x that)). On a shared machine the 1-rank runs
// of several threads suffer most from other jobs: their OpenMP threads wait for each other.
// GPUs (VDITKIT_SCALE_DEVICE=cuda): each rank its own GPU with a batch of 2, N =
// VDITKIT_SCALE_RANKS (default 2): efficiency = N-rank throughput / (N x 1-rank throughput).
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "autograd/check.h"
#include "autograd/random.h"
#include "bench/harness.h"
#include "bench/random_checkpoint.h"
#include "data/latent_dataset.h"

namespace vdit::bench {

namespace {

namespace fs = std::filesystem;

constexpr int kSteps = 6, kWarmup = 2;  // steps run, and those left out of the figures

struct RunFigures {
  double samples_per_s;
  double sum_seconds;  // median per step in the gradient sum (0 on one rank)
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Runs the retraining on `ranks` ranks of `threads` OpenMP threads and reads its log.
RunFigures run_ranks(const std::vector<std::string>& args, const fs::path& out, int ranks, int threads,
                     int64_t global_batch) {
  const std::string vditkit = (fs::read_symlink("/proc/self/exe").parent_path() / "vditkit").string();
  std::string command = "OMP_NUM_THREADS=" + std::to_string(threads) + " ";
  if (ranks > 1) {
#ifdef VDITKIT_MPIEXEC
    command += std::string(VDITKIT_MPIEXEC) + " -np " + std::to_string(ranks) +
               " --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS ";
#else
    VDIT_FAIL("vditkit-bench was built without MPI: no multi-rank run");
#endif
  }
  command += vditkit;
  for (const std::string& a : args) command += " " + a;
  command += " --out " + out.string() + " > " + (out.string() + ".txt") + " 2>&1";
  VDIT_CHECK(std::system(command.c_str()) == 0, "failed: " << command << " (see " << out.string() << ".txt)");
  std::vector<double> seconds, sums;
  std::ifstream log(out / "train_log.jsonl");
  for (std::string line; std::getline(log, line);) {
    const nlohmann::json record = nlohmann::json::parse(line);
    if (!record.contains("loss") || record["step"].get<int>() <= kWarmup) continue;
    seconds.push_back(record["seconds"]);
    sums.push_back(record.value("gradient_sum_seconds", 0.0));
  }
  VDIT_CHECK(!seconds.empty(), out.string() << "/train_log.jsonl has no step after the warm-up");
  return {static_cast<double>(global_batch) / median(seconds), median(sums)};
}

void run_scale() {
  const char* device_variable = std::getenv("VDITKIT_SCALE_DEVICE");
  const bool gpus = device_variable && std::string(device_variable) == "cuda";
  const char* ranks_variable = std::getenv("VDITKIT_SCALE_RANKS");
  const int ranks = ranks_variable ? std::atoi(ranks_variable) : 2;
  VDIT_CHECK(ranks >= 2, "VDITKIT_SCALE_RANKS must be at least 2");
  const int threads = omp_get_max_threads();
  const int rank_threads = std::max(1, threads / ranks);

  // CPU: a 4-block model of width 512 at 256 tokens, blocks 1-3 trained (about 12.6M
  // parameters, 50 MB of gradients a step). GPU: 8 blocks of the 1.3B shapes at 1,024 tokens, 4-7 trained.
  VDiTConfig config = VDiTConfig::wan_1_3b();
  Shape latents{16, 4, 32, 32};
  std::string layers = "4-7";
  int64_t text_len = 512;
  config.num_layers = 8;
  if (!gpus) {
    config.dim = 512;
    config.ffn_dim = 2048;
    config.num_heads = 8;
    config.num_layers = 4;
    config.text_dim = 512;
    config.text_len = text_len = 64;
    latents = {16, 4, 16, 16};
    layers = "1-3";
  }
  const fs::path dir = fs::temp_directory_path() / "vditkit-bench-scale";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_random_checkpoint((dir / "model.safetensors").string(), config);
  Rng rng(3);
  std::vector<LatentSample> samples;
  for (int i = 0; i < 8; ++i)
    samples.push_back({rng.normal_tensor(latents), rng.normal_tensor({text_len, config.text_dim}), "bench"});
  write_latent_dataset((dir / "data.h5").string(), samples);

  const int64_t per_rank_batch = 2;
  auto args = [&](int64_t batch) {
    std::vector<std::string> a{"retrain", "--model", (dir / "model.safetensors").string(), "--data",
                               (dir / "data.h5").string(), "--layers", layers, "--steps", std::to_string(kSteps),
                               "--batch-size", std::to_string(batch), "--lr", "1e-5", "--no-diagnostics"};
    if (gpus) a.insert(a.end(), {"--device", "cuda"});
    return a;
  };
  const int64_t one_batch = gpus ? per_rank_batch : 4, many_batch = gpus ? per_rank_batch * ranks : 4;
  const RunFigures one = run_ranks(args(one_batch), dir / "one", 1, gpus ? rank_threads : threads, one_batch);
  const RunFigures many = run_ranks(args(many_batch), dir / "many", ranks, rank_threads, many_batch);
  const RunFigures one_rank_threads =
      gpus ? one : run_ranks(args(one_batch), dir / "one-narrow", 1, rank_threads, one_batch);
  fs::remove_all(dir);

  report("scale_device", gpus ? "cuda (one GPU per rank)" : "cpu");
  report("scale_ranks", ranks);
  report("scale_threads_per_rank", rank_threads);
  report("scale_1rank_threads", gpus ? rank_threads : threads);
  report("scale_global_batch_1rank", static_cast<double>(one_batch));
  report("scale_global_batch_nrank", static_cast<double>(many_batch));
  report("scale_1rank_samples_per_s", one.samples_per_s);
  report("scale_nrank_samples_per_s", many.samples_per_s);
  if (!gpus) {
    report("scale_1rank_samples_per_s_at_threads_per_rank", one_rank_threads.samples_per_s);
    report("scale_efficiency_equal_total_threads", many.samples_per_s / one.samples_per_s);
  }
  report("scale_efficiency", many.samples_per_s / (ranks * one_rank_threads.samples_per_s));
  report("scale_gradient_sum_s_per_step", many.sum_seconds);
  report("scale_gradient_sum_share_of_step", many.sum_seconds * many.samples_per_s / static_cast<double>(many_batch));
}

Register scale_section("scale",
                       "retraining throughput on 1 and N ranks (mpirun; VDITKIT_SCALE_DEVICE=cuda: one GPU per rank, "
                       "VDITKIT_SCALE_RANKS=N) and the time per step in the gradient sum",
                       run_scale);

}  // namespace

}  // namespace vdit::bench
