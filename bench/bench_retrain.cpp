// Retraining figures (issue: retraining): one optimizer step retraining block 20 of a
// 30-block 1.3B-shaped model (random weights) at 1024 latent tokens and 512 context tokens,
// ours (through the real Retrainer) against PyTorch with the same model frozen but one block;
// and the peak memory of each.
#include <malloc.h>
#include <omp.h>

#include <filesystem>

#include "autograd/random.h"
#include "bench/harness.h"
#include "bench/random_checkpoint.h"
#include "data/latent_dataset.h"
#include "train/trainer.h"

namespace vdit::bench {

namespace {

namespace fs = std::filesystem;

struct StepFigures {
  double seconds;
  double peak_mib;  // process peak RSS while loading and stepping
};

StepFigures measure_retrain(const RetrainOptions& options, int runs) {
  malloc_trim(0);
  reset_peak_rss();
  Retrainer trainer(options);
  trainer.step();  // warm-up: first touches of weights and optimizer moments
  const double seconds = seconds_per_call([&] { trainer.step(); }, runs, 0.0);
  return {seconds, peak_rss_mib()};
}

void run_retrain() {
  const int threads = omp_get_max_threads();
  report("threads", threads);
  const fs::path dir = fs::temp_directory_path() / "vditkit-bench-retrain";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_random_checkpoint((dir / "model.safetensors").string(), VDiTConfig::wan_1_3b());
  Rng rng(3);  // one sample: latents [16, 4, 32, 32] -> 4 x 16 x 16 = 1024 tokens; 512 context tokens
  write_latent_dataset((dir / "data.h5").string(),
                       {{rng.normal_tensor({16, 4, 32, 32}), rng.normal_tensor({512, 4096}), "bench"}});

  RetrainOptions options;
  options.model = (dir / "model.safetensors").string();
  options.data = {(dir / "data.h5").string()};
  options.layers = "20";
  options.steps = 1000;
  options.lr.base_lr = 1e-5;
  options.out = (dir / "run").string();
  const StepFigures ours = measure_retrain(options, 2);
  report("retrain_step_s", ours.seconds);
  report("retrain_peak_mib", ours.peak_mib);

  options.frozen_bf16 = true;
  options.recompute_frozen = true;  // blocks 21-29 keep only their inputs for the backward pass
  options.out = (dir / "run-bf16").string();
  const StepFigures bf16 = measure_retrain(options, 1);
  report("retrain_frozen_bf16_recompute_step_s", bf16.seconds);
  report("retrain_frozen_bf16_recompute_peak_mib", bf16.peak_mib);
  fs::remove_all(dir);

  const std::vector<double> torch = python_figures("torch_retrain_step.py", "", threads);
  if (torch.size() != 2) {
    report("torch_retrain_step_s", "unavailable (python3-torch missing?)");
    return;
  }
  report("torch_retrain_step_s", torch[0]);
  report("torch_retrain_peak_mib", torch[1]);
  report("retrain_speedup", torch[0] / ours.seconds);
  report("retrain_peak_vs_torch", ours.peak_mib / torch[1]);
  report("retrain_frozen_bf16_recompute_peak_vs_torch", bf16.peak_mib / torch[1]);
}

Register retrain_section("retrain", "one step retraining block 20 of a 1.3B-shaped model, ours vs PyTorch", run_retrain);

}  // namespace

}  // namespace vdit::bench
