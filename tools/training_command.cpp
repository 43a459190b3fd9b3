#include "tools/training_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "autograd/cuda_backend.h"
#include "train/checkpoint_dir.h"
#include "train/data_parallel.h"
#include "train/run_state.h"
#include "train/trainer.h"

namespace vdit::cli {

void TrainingFlags::add_to(po::options_description& d) {
  RetrainOptions& o = options;
  d.add_options()
      ("model", po::value(&o.model), "pretrained weights: safetensors file, index, directory or vditkit .h5")
      ("config", po::value(&o.config)->default_value(""), "config.json overriding the one beside the weights")
      ("adapter", po::value(&o.adapter)->default_value(""), "temperature adapter to apply to the model first")
      ("data", po::value(&o.data)->multitoken(), "latent dataset: .h5 files or directories of them")
      ("steps", po::value(&o.steps)->default_value(o.steps), "optimizer steps in all")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of the initialisation, noise levels, noise and data order")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "samples per micro-batch (of one latent shape)")
      ("grad-accum", po::value(&o.grad_accum)->default_value(o.grad_accum), "micro-batches per optimizer step")
      ("timestep-sampling", po::value(&sampling_)->default_value(sampling_), "uniform or logit-normal")
      ("logit-mean", po::value(&o.flow.logit_mean)->default_value(o.flow.logit_mean), "logit-normal mean")
      ("logit-std", po::value(&o.flow.logit_std)->default_value(o.flow.logit_std), "logit-normal standard deviation")
      ("shift", po::value(&o.flow.shift)->default_value(o.flow.shift), "noise-level shift s: sigma' = s sigma / (1 + (s-1) sigma)")
      ("loss-weighting", po::value(&weighting_)->default_value(weighting_), "none, cosmap or sigma-sqrt")
      ("teacher", po::value(&o.teacher)->default_value(""), "distil: the target is this model's velocity, not noise - x0")
      ("teacher-adapter", po::value(&o.teacher_adapter)->default_value(""), "temperature adapter of the teacher")
      ("teacher-temperature", po::value(&o.teacher_temperature)->default_value(""), "fixed teacher temperatures, BLOCKS:VALUE[;...]")
      ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer), "adamw or sgd")
      ("lr", po::value(&o.lr.base_lr)->default_value(o.lr.base_lr), "peak learning rate")
      ("warmup", po::value(&o.lr.warmup_steps)->default_value(o.lr.warmup_steps), "linear warmup steps")
      ("lr-decay", po::value(&decay_)->default_value(decay_), "after warmup: cosine or constant")
      ("min-lr-ratio", po::value(&o.lr.min_lr_ratio)->default_value(o.lr.min_lr_ratio), "cosine floor as a fraction of --lr")
      ("beta1", po::value(&o.adamw.beta1)->default_value(o.adamw.beta1), "AdamW first-moment decay")
      ("beta2", po::value(&o.adamw.beta2)->default_value(o.adamw.beta2), "AdamW second-moment decay")
      ("adam-eps", po::value(&o.adamw.eps)->default_value(o.adamw.eps), "AdamW epsilon")
      ("weight-decay", po::value(&o.adamw.weight_decay)->default_value(o.adamw.weight_decay),
       "decoupled (AdamW) or L2 (SGD) weight decay, on matrices only")
      ("momentum", po::value(&o.sgd.momentum)->default_value(o.sgd.momentum), "SGD momentum")
      ("nesterov", po::bool_switch(&o.sgd.nesterov), "SGD with Nesterov momentum")
      ("clip-grad", po::value(&o.clip_grad)->default_value(o.clip_grad), "global gradient-norm limit (0: none)")
      ("checkpoint-every", po::value(&o.checkpoint_every)->default_value(o.checkpoint_every), "steps between checkpoints (0: only at the end)")
      ("keep-last", po::value(&o.keep_last)->default_value(o.keep_last), "checkpoints to keep (0: all)")
      ("frozen-bf16", po::bool_switch(&o.frozen_bf16), "hold frozen weights as bf16 (half the memory)")
      ("recompute-frozen", po::bool_switch(&o.recompute_frozen),
       "frozen blocks after the first trainable one keep only their input and are recomputed in the backward pass")
      ("out", po::value(&o.out), "run directory: checkpoints and train_log.jsonl (default: beside --resume)")
      ("resume", po::value(&o.resume), "continue from this checkpoint directory, exactly")
      ("no-diagnostics", po::bool_switch(&no_diagnostics_), "skip the attention diagnostics of the start and each checkpoint")
      ("stop-on-fail", po::bool_switch(&o.stop_on_fail), "stop when a retrained block fails its diagnostic checks")
      ("validation-samples", po::value(&o.validation_samples)->default_value(o.validation_samples),
       "pixel-space models: clips sampled with the first probe captions into each checkpoint's report");
  probe_.add_to(d);
  device_.add_to(d);
}

void TrainingFlags::finish(const po::variables_map& vm) {
  RetrainOptions& o = options;
  o.flow.sampling = parse_sigma_sampling(sampling_);
  o.flow.weighting = parse_loss_weighting(weighting_);
  o.lr.decay = parse_lr_decay(decay_);
  o.sgd.weight_decay = o.adamw.weight_decay;
  o.diagnostics = !no_diagnostics_;
  probe_.finish();
  o.device = device_.device();
  if (o.resume.empty()) {
    if (o.model.empty()) throw UsageError("--model is required (or --resume)");
    if (o.data.empty()) throw UsageError("--data is required (or --resume)");
    if (o.out.empty()) throw UsageError("--out is required (or --resume)");
    return;
  }
  // The checkpoint knows the run; flags given now must agree with it, except those that say
  // how long it goes and how often it checkpoints (--steps, --checkpoint-every, --keep-last).
  const std::string checkpoint = normalise_checkpoint_path(o.resume);
  const RunState state = RunState::load((std::filesystem::path(checkpoint) / "state").string());
  const nlohmann::json stored = RetrainOptions::from_run_config(nlohmann::json::parse(state.run_config)).run_config();
  const nlohmann::json given = o.run_config();
  nlohmann::json resumed_config = stored;
  for (const auto& [key, value] : given.items()) {
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (!vm.count(flag) || vm[flag].defaulted() || stored[key] == value) continue;
    if (!resume_may_change(key))
      throw UsageError("--" + flag + " " + value.dump() + " differs from the run being resumed (" + stored[key].dump() + ")");
    resumed_config[key] = value;
  }
  RetrainOptions resumed = RetrainOptions::from_run_config(resumed_config);
  resumed.resume = checkpoint;
  resumed.out = o.out.empty() ? checkpoint_run_dir(checkpoint) : o.out;
  resumed.device = o.device;
  o = resumed;
}

namespace {

// The run on one rank of `group`; rank 0 alone prints.
int train(RetrainOptions o, const std::string& what, DataParallel& group) {
  if (group.size() > 1 && o.device.is_cuda()) {
    // One GPU per rank: the r-th rank of a machine computes on cuda:r, whatever --device's index.
    const int gpus = cuda_backend().device_count();
    VDIT_CHECK(group.local_rank() < gpus, "rank " << group.rank() << " is rank " << group.local_rank()
                                                  << " of its machine, which shows only " << gpus
                                                  << " GPU(s): start at most one rank per GPU");
    o.device = Device::cuda(group.local_rank());
  }
  Retrainer trainer(o, group);
  if (group.rank() != 0) {
    trainer.run(nullptr);
    return 0;
  }
  int64_t trainable = 0;
  for (const TrainableParameter& p : trainer.trainable()) trainable += p.value.numel();
  std::cout << (o.resume.empty() ? "" : "resuming ") << what << " (" << trainer.trainable().size() << " tensors, "
            << trainable << " parameters) of " << (o.resume.empty() ? o.model : o.resume) << " on "
            << trainer.data().size() << " samples"
            << (group.size() > 1 ? " on " + std::to_string(group.size()) + " ranks" : "")
            << (o.resume.empty() ? "" : " from step " + std::to_string(trainer.current_step())) << " on "
            << (group.size() > 1 && o.device.is_cuda() ? "one GPU per rank" : to_string(o.device)) << "\n";
  std::string blocks;
  for (int b : trainer.trained_blocks()) blocks += (blocks.empty() ? "" : ", ") + std::to_string(b);
  if (!blocks.empty()) std::cout << "trained blocks: " << blocks << "\n";
  std::cout.flush();  // before the progress line on stderr
  const RetrainSummary summary = trainer.run(stderr);
  std::cout << "steps " << summary.start_step << " -> " << summary.end_step << ": loss " << summary.first_loss
            << " -> smoothed " << summary.last_smoothed_loss << "\n"
            << "checkpoint: " << summary.last_checkpoint << "\nlog: " << train_log_path(o.out) << "\n";
  if (o.tune_temperature) std::cout << "adapter: " << adapter_path(o.out) << "\n";
  return 0;
}

}  // namespace

int run_training(const RetrainOptions& o, const std::string& what) {
  const std::unique_ptr<DataParallel> group = join_data_parallel();
  try {
    return train(o, what, *group);
  } catch (const std::exception& e) {
    // With several ranks the others may be waiting for this one in a sum: stop them all, naming
    // this rank and the cause. One process reports the error as every command does.
    group->abort(std::string("error: ") + e.what());
    throw;
  }
}

}  // namespace vdit::cli
