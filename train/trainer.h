#pragma once
// The retraining loop: a frozen pretrained model whose chosen layers learn with the
// flow-matching loss; atomic checkpoints every N steps; an exact resume from any of them.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/adapter.h"
#include "data/latent_dataset.h"
#include "diagnostics/diagnostics_report.h"
#include "diagnostics/thresholds.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "train/batch_sampler.h"
#include "train/data_parallel.h"
#include "train/gradient_sum.h"
#include "train/retrain_options.h"
#include "train/run_state.h"

namespace vdit {

struct RetrainSummary {
  int64_t start_step = 0, end_step = 0;
  double first_loss = 0.0, last_smoothed_loss = 0.0;
  std::string last_checkpoint;
};

class Retrainer {
 public:
  // Loads the model (or, with options.resume, the checkpoint and its state), the data, makes
  // the chosen layers trainable and builds the optimizer. Errors name what is inconsistent.
  // With a `group` of several ranks (data-parallel: README "Data-parallel retraining"), each
  // rank computes its share of every batch, the gradients are summed across the ranks, and
  // rank 0 alone writes the log, the progress line, checkpoints and reports.
  explicit Retrainer(RetrainOptions options, DataParallel& group = single_process());

  // One optimizer step over grad_accum micro-batches. Returns the step's log record (step,
  // loss, lr, grad_norm, sigma stats, seconds; with several ranks, gradient_sum_seconds). A non-finite loss or gradient throws before
  // any weight changes, naming the step, the trained layers and the last good checkpoint.
  nlohmann::json step();
  // Writes RUN_DIR/checkpoint-<step> atomically and prunes old ones; returns its path.
  std::string save_checkpoint();
  // Steps to options.steps with a progress line on `progress`, the JSON-lines log and
  // checkpoints; returns what happened. `after_step` sees each step's record once it is
  // logged (an exception from it stops the run there, as a crash would). On ranks other than
  // 0 it steps and writes nothing.
  RetrainSummary run(std::FILE* progress = stderr,
                     const std::function<void(const nlohmann::json&)>& after_step = {});

  int64_t current_step() const { return state_.step; }
  const Model& model() const { return *model_; }
  const LatentDataset& data() const { return data_; }
  const std::vector<TrainableParameter>& trainable() const { return optimizer_->parameters(); }
  const RetrainOptions& options() const { return options_; }
  // Blocks with a trainable parameter.
  std::vector<int> trained_blocks() const;
  // The learnt temperatures (of a temperature-tuning run) with the base model's identity.
  Adapter adapter() const;

 private:
  [[noreturn]] void fail_not_finite(const std::string& what) const;
  // The run's options and its rank count: what a checkpoint records and a resume checks.
  nlohmann::json stored_run_config() const;
  bool checkpoint_due() const;
  // The steps of a rank other than 0: the same computation, nothing written.
  RetrainSummary follow();
  // Diagnoses the model as it is now, with the run's probe settings.
  DiagnosticsReport diagnose_now(const std::string& label) const;

  RetrainOptions options_;
  DataParallel& group_;
  GradientSum sum_gradients_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Model> teacher_;    // distillation target, or null
  std::string base_identity_;        // of the base model, for the adapter of a temperature run
  LatentDataset data_;
  std::unique_ptr<BatchSampler> sampler_;
  std::unique_ptr<Optimizer> optimizer_;
  RunState state_;
  Rng sigma_rng_, noise_rng_, data_rng_;
  std::string last_checkpoint_;
  Thresholds thresholds_;
  std::unique_ptr<DiagnosticsReport> start_report_;  // the starting model's, for before/after
  std::vector<BlockVerdict> last_verdicts_;          // of the last checkpoint's diagnosis
};

// A model as a run starts from: weights, then an adapter, then fixed temperatures (each optional).
// Any family's (data/model_families.h).
std::unique_ptr<Model> load_run_model(const std::string& path, const std::string& config_path, bool frozen_bf16,
                                      const std::string& adapter, const std::string& fixed_temperature,
                                      std::string* identity = nullptr);

// RUN_DIR/diagnostics-start: the report on the model a run started from.
std::string start_report_dir(const std::string& run_dir);

// RUN_DIR/adapter.h5: the final adapter of a temperature-tuning run.
std::string adapter_path(const std::string& run_dir);

// The log of a run directory, one record per step.
std::string train_log_path(const std::string& run_dir);

}  // namespace vdit
