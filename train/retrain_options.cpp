#include "train/retrain_options.h"

#include "autograd/check.h"

namespace vdit {

InitMode parse_init_mode(const std::string& name) {
  if (name == "reinit") return InitMode::Reinit;
  if (name == "keep") return InitMode::Keep;
  VDIT_FAIL("unknown --init '" << name << "' (known: reinit, keep)");
}

std::string to_string(InitMode mode) { return mode == InitMode::Reinit ? "reinit" : "keep"; }

nlohmann::json RetrainOptions::run_config() const {
  return {{"model", model},
          {"config", config},
          {"data", data},
          {"layers", layers},
          {"init", to_string(init)},
          {"steps", steps},
          {"seed", seed},
          {"batch_size", batch_size},
          {"grad_accum", grad_accum},
          {"timestep_sampling", to_string(flow.sampling)},
          {"logit_mean", flow.logit_mean},
          {"logit_std", flow.logit_std},
          {"shift", flow.shift},
          {"loss_weighting", to_string(flow.weighting)},
          {"optimizer", optimizer},
          {"lr", lr.base_lr},
          {"warmup", lr.warmup_steps},
          {"lr_decay", lr.decay == LrDecay::Cosine ? "cosine" : "constant"},
          {"min_lr_ratio", lr.min_lr_ratio},
          {"beta1", adamw.beta1},
          {"beta2", adamw.beta2},
          {"adam_eps", adamw.eps},
          {"weight_decay", adamw.weight_decay},
          {"momentum", sgd.momentum},
          {"nesterov", sgd.nesterov},
          {"clip_grad", clip_grad},
          {"checkpoint_every", checkpoint_every},
          {"keep_last", keep_last},
          {"frozen_bf16", frozen_bf16},
          {"recompute_frozen", recompute_frozen},
          {"adapter", adapter},
          {"tune_temperature", tune_temperature},
          {"temperature_blocks", temperature_blocks},
          {"granularity", to_string(granularity)},
          {"cross_attn_temperature", cross_attn_temperature},
          {"teacher", teacher},
          {"teacher_adapter", teacher_adapter},
          {"teacher_temperature", teacher_temperature},
          {"diagnostics", diagnostics},
          {"probe_sigmas", diagnose.sigmas},
          {"probe_samples", diagnose.probe_samples},
          {"sparse_keep", diagnose.sparse_keep},
          {"sink_threshold", diagnose.stats.sink_threshold},
          {"diagnostic_checks", diagnostic_checks},
          {"stop_on_fail", stop_on_fail},
          {"validation_samples", validation_samples}};
}

RetrainOptions RetrainOptions::from_run_config(const nlohmann::json& c) {
  RetrainOptions o;
  try {
    o.model = c.at("model");
    o.config = c.at("config");
    o.data = c.at("data").get<std::vector<std::string>>();
    o.layers = c.at("layers");
    o.init = parse_init_mode(c.at("init"));
    o.steps = c.at("steps");
    o.seed = c.at("seed");
    o.batch_size = c.at("batch_size");
    o.grad_accum = c.at("grad_accum");
    o.flow.sampling = parse_sigma_sampling(c.at("timestep_sampling"));
    o.flow.logit_mean = c.at("logit_mean");
    o.flow.logit_std = c.at("logit_std");
    o.flow.shift = c.at("shift");
    o.flow.weighting = parse_loss_weighting(c.at("loss_weighting"));
    o.optimizer = c.at("optimizer");
    o.lr.base_lr = c.at("lr");
    o.lr.warmup_steps = c.at("warmup");
    o.lr.decay = parse_lr_decay(c.at("lr_decay"));
    o.lr.min_lr_ratio = c.at("min_lr_ratio");
    o.adamw.beta1 = c.at("beta1");
    o.adamw.beta2 = c.at("beta2");
    o.adamw.eps = c.at("adam_eps");
    o.adamw.weight_decay = o.sgd.weight_decay = c.at("weight_decay");
    o.sgd.momentum = c.at("momentum");
    o.sgd.nesterov = c.at("nesterov");
    o.clip_grad = c.at("clip_grad");
    o.checkpoint_every = c.value("checkpoint_every", o.checkpoint_every);  // absent before they were stored
    o.keep_last = c.value("keep_last", o.keep_last);
    o.frozen_bf16 = c.at("frozen_bf16");
    o.recompute_frozen = c.value("recompute_frozen", false);
    o.adapter = c.at("adapter");
    o.tune_temperature = c.at("tune_temperature");
    o.temperature_blocks = c.at("temperature_blocks");
    o.granularity = parse_temperature_granularity(c.at("granularity"));
    o.cross_attn_temperature = c.at("cross_attn_temperature");
    o.teacher = c.at("teacher");
    o.teacher_adapter = c.at("teacher_adapter");
    o.teacher_temperature = c.at("teacher_temperature");
    o.diagnostics = c.at("diagnostics");
    o.diagnose.sigmas = c.at("probe_sigmas").get<std::vector<double>>();
    o.diagnose.probe_samples = c.at("probe_samples");
    o.diagnose.sparse_keep = c.at("sparse_keep");
    o.diagnose.stats.sink_threshold = c.at("sink_threshold");
    o.diagnostic_checks = c.at("diagnostic_checks");
    o.stop_on_fail = c.at("stop_on_fail");
    o.validation_samples = c.at("validation_samples");
  } catch (const nlohmann::json::exception& e) {
    VDIT_FAIL("run config: " << e.what());
  }
  return o;
}

bool resume_may_change(const std::string& key) {
  return key == "steps" || key == "checkpoint_every" || key == "keep_last";
}

}  // namespace vdit
