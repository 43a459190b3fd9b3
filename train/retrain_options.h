#pragma once
// Everything a retraining run is configured by. The command line fills it; the run config
// stored in every checkpoint is its JSON, so a resume can check it continues the same run.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/device.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "diagnostics/diagnose.h"
#include "train/flow_matching.h"
#include "train/temperature.h"

namespace vdit {

enum class InitMode { Reinit, Keep };  // fresh weights (Wan's scheme) or the pretrained ones
InitMode parse_init_mode(const std::string& name);  // "reinit" | "keep"
std::string to_string(InitMode mode);

struct RetrainOptions {
  std::string model;                  // weights to start from
  std::string config;                 // config.json overriding the one beside the weights
  std::vector<std::string> data;      // latent dataset files or directories
  std::string layers = "0";           // --layers specification
  InitMode init = InitMode::Reinit;
  int64_t steps = 100;
  uint64_t seed = 0;                  // initialisation, sigma, noise and data order
  int64_t batch_size = 1;
  int64_t grad_accum = 1;
  FlowMatchingConfig flow;
  std::string optimizer = "adamw";
  AdamWOptions adamw;
  SgdOptions sgd;
  LrSchedule lr;                      // total_steps is set from `steps`
  double clip_grad = 1.0;             // global-norm clipping; <= 0 disables
  int64_t checkpoint_every = 0;       // 0: only at the end
  int keep_last = 3;                  // checkpoints kept (0: all)
  bool frozen_bf16 = false;           // hold frozen weights as bf16
  bool recompute_frozen = false;      // frozen blocks after a trainable one: recompute, not store
  std::string adapter;                // temperature adapter applied to the model first
  // Temperature tuning (tune-temperature): only log temperatures learn, not --layers.
  bool tune_temperature = false;
  std::string temperature_blocks = "all";
  TemperatureGranularity granularity = TemperatureGranularity::Head;
  bool cross_attn_temperature = false;
  // Distillation: the target is this model's velocity on the same noisy input, not noise - x0.
  std::string teacher;
  std::string teacher_adapter;
  std::string teacher_temperature;    // fixed teacher temperatures, "BLOCKS:VALUE"
  // Attention diagnostics of the starting model and at every checkpoint.
  bool diagnostics = true;
  DiagnoseOptions diagnose;           // sigmas here are before the shift; the run's --shift applies
  std::string diagnostic_checks;      // thresholds file; empty: the shipped defaults
  bool stop_on_fail = false;          // end the run when a retrained block fails its checks
  int64_t validation_samples = 2;     // pixel-space models: clips sampled into each checkpoint's report
  std::string out;                    // run directory
  std::string resume;                 // checkpoint directory to continue from
  // Where the run computes. Not part of the run config: a run may move between the CPU and a
  // GPU at a resume (README, "GPUs"). On a GPU frozen weights are bf16 whatever frozen_bf16 says.
  Device device;

  // The options that define the run (not where it writes, resumes from or computes).
  nlohmann::json run_config() const;
  // The inverse, for a resume; `out` and `resume` stay empty. Errors name the missing key.
  static RetrainOptions from_run_config(const nlohmann::json& config);
};

// Run-config keys a resume may change: how long the run goes and how often it checkpoints
// ("steps", "checkpoint_every", "keep_last"), not what it computes.
bool resume_may_change(const std::string& key);

}  // namespace vdit
