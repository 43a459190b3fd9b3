// vditkit retrain: freeze a pretrained model, reinitialise the chosen layers and retrain them
// with the flow-matching loss; checkpoints, a JSON-lines log and an exact resume.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "autograd/check.h"
#include "train/run_state.h"
#include "train/trainer.h"
#include "tools/command.h"

namespace vdit::cli {
namespace {

int run_retrain(int argc, char** argv) {
  RetrainOptions o;
  std::string init = "reinit", sampling = "uniform", weighting = "none", decay = "cosine";
  po::options_description options;
  options.add_options()
      ("model", po::value(&o.model), "pretrained weights: safetensors file, index, directory or vditkit .h5")
      ("config", po::value(&o.config)->default_value(""), "config.json overriding the one beside the weights")
      ("data", po::value(&o.data)->multitoken(), "latent dataset: .h5 files or directories of them")
      ("layers", po::value(&o.layers)->default_value(o.layers),
       "what to train: blocks (3,19 or 10-12), sub-modules (3.self_attn, 3.cross_attn, 3.ffn, 3.modulation, "
       "3.norms), head, embeddings, all")
      ("init", po::value(&init)->default_value(init), "reinit (fresh weights, Wan's scheme) or keep (fine-tune)")
      ("steps", po::value(&o.steps)->default_value(o.steps), "optimizer steps in all")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of the initialisation, noise levels, noise and data order")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "samples per micro-batch (of one latent shape)")
      ("grad-accum", po::value(&o.grad_accum)->default_value(o.grad_accum), "micro-batches per optimizer step")
      ("timestep-sampling", po::value(&sampling)->default_value(sampling), "uniform or logit-normal")
      ("logit-mean", po::value(&o.flow.logit_mean)->default_value(o.flow.logit_mean), "logit-normal mean")
      ("logit-std", po::value(&o.flow.logit_std)->default_value(o.flow.logit_std), "logit-normal standard deviation")
      ("shift", po::value(&o.flow.shift)->default_value(o.flow.shift), "noise-level shift s: sigma' = s sigma / (1 + (s-1) sigma)")
      ("loss-weighting", po::value(&weighting)->default_value(weighting), "none, cosmap or sigma-sqrt")
      ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer), "adamw or sgd")
      ("lr", po::value(&o.lr.base_lr)->default_value(o.lr.base_lr), "peak learning rate")
      ("warmup", po::value(&o.lr.warmup_steps)->default_value(o.lr.warmup_steps), "linear warmup steps")
      ("lr-decay", po::value(&decay)->default_value(decay), "after warmup: cosine or constant")
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
      ("out", po::value(&o.out), "run directory: checkpoints and train_log.jsonl (default: beside --resume)")
      ("resume", po::value(&o.resume), "continue from this checkpoint directory, exactly");
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit retrain --model M --data D --layers SPEC --out DIR [options] | --resume CHECKPOINT", options);
  if (vm.empty()) return 0;
  o.init = parse_init_mode(init);
  o.flow.sampling = parse_sigma_sampling(sampling);
  o.flow.weighting = parse_loss_weighting(weighting);
  o.lr.decay = parse_lr_decay(decay);
  o.sgd.weight_decay = o.adamw.weight_decay;

  if (!o.resume.empty()) {
    // The checkpoint knows the run; flags given now must agree with it (--steps may extend it).
    const RunState state = RunState::load((std::filesystem::path(o.resume) / "state").string());
    const nlohmann::json stored = nlohmann::json::parse(state.run_config);
    const nlohmann::json given = o.run_config();
    RetrainOptions resumed = RetrainOptions::from_run_config(stored);
    for (const auto& [key, value] : stored.items()) {
      std::string flag = key;
      std::replace(flag.begin(), flag.end(), '_', '-');
      if (!vm.count(flag) || vm[flag].defaulted() || given[key] == value) continue;
      if (key == "steps") resumed.steps = o.steps;
      else throw UsageError("--" + flag + " " + given[key].dump() + " differs from the run being resumed (" + value.dump() + ")");
    }
    resumed.resume = o.resume;
    resumed.out = o.out.empty() ? std::filesystem::path(o.resume).parent_path().string() : o.out;
    o = resumed;
  } else {
    if (o.model.empty()) throw UsageError("--model is required (or --resume)");
    if (o.data.empty()) throw UsageError("--data is required (or --resume)");
    if (o.out.empty()) throw UsageError("--out is required (or --resume)");
  }

  Retrainer trainer(o);
  int64_t trainable = 0;
  for (const TrainableParameter& p : trainer.trainable()) trainable += p.value.numel();
  std::cout << (o.resume.empty() ? "retraining " : "resuming ") << o.layers << " (" << trainer.trainable().size()
            << " tensors, " << trainable << " parameters) of " << (o.resume.empty() ? o.model : o.resume) << " on "
            << trainer.data().size() << " samples"
            << (o.resume.empty() ? "" : " from step " + std::to_string(trainer.current_step())) << "\n";
  const RetrainSummary summary = trainer.run(stderr);
  std::cout << "steps " << summary.start_step << " -> " << summary.end_step << ": loss " << summary.first_loss
            << " -> smoothed " << summary.last_smoothed_loss << "\n"
            << "checkpoint: " << summary.last_checkpoint << "\nlog: " << train_log_path(o.out) << "\n";
  return 0;
}

const RegisterCommand reg("retrain", "freeze a model, reinitialise chosen layers and retrain them", run_retrain);

}  // namespace
}  // namespace vdit::cli
