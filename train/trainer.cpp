#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/check.h"
#include "diagnostics/diagnose.h"
#include "autograd/tape.h"
#include "data/adapter.h"
#include "data/atomic_file.h"
#include "data/hdf5_file.h"
#include "data/model_families.h"
#include "optim/grad_clip.h"
#include "train/checkpoint_dir.h"
#include "train/layer_selection.h"
#include "train/progress.h"
#include "train/run_report.h"
#include "train/trainable.h"

namespace vdit {

namespace fs = std::filesystem;

namespace {

// Independent streams from one seed (constants: arbitrary, fixed forever for reproducibility).
constexpr uint64_t kSigmaStream = 0x5349474d41ull, kNoiseStream = 0x4e4f495345ull, kDataStream = 0x44415441ull;

// Every sample must fit the model; the error names the sample.
void check_data_fits(const LatentDataset& data, const ModelFacts& c) {
  for (int64_t i = 0; i < data.size(); ++i) {
    const Shape& l = data.latent_shape(i);
    const Shape& x = data.context_shape(i);
    VDIT_CHECK(l[0] == c.in_channels,
               data.where(i) << ": latents have " << l[0] << " channels, the model takes " << c.in_channels);
    for (int a = 0; a < 3; ++a)
      VDIT_CHECK(l[1 + a] % c.patch[a] == 0, data.where(i) << ": latents " << to_string(l)
                                                           << " are not divisible by the patch size");
    VDIT_CHECK(x[1] == c.text_dim, data.where(i) << ": context width " << x[1] << " is not text_dim " << c.text_dim);
    VDIT_CHECK(x[0] <= c.text_len, data.where(i) << ": context has " << x[0] << " tokens, more than text_len " << c.text_len);
    VDIT_CHECK(!c.exact_text_len || x[0] == c.text_len,
               data.where(i) << ": context has " << x[0] << " rows; a " << c.family << " model needs exactly "
                             << c.text_len << " (pad the captions: make-dataset --pad-context-to " << c.text_len << ")");
  }
}

// The keys whose values differ between two run configs (ignoring those a resume may change),
// for the error when a resume does not continue the same run.
std::string config_differences(const nlohmann::json& stored, const nlohmann::json& given) {
  std::string out;
  for (const auto& [key, value] : stored.items())
    if (!resume_may_change(key) && (!given.contains(key) || given[key] != value))
      out += (out.empty() ? "" : ", ") + key + " (" + value.dump() + " vs " + (given.contains(key) ? given[key].dump() : "absent") + ")";
  return out;
}

// Keeps the log's records up to `step` (a resumed run rewrites what followed its checkpoint).
// A last line that is not a JSON record was cut short by a kill or power cut while it was
// written: it is dropped, saying so on `progress`. A bad line before the last is an error.
void truncate_log(const std::string& path, int64_t step, std::FILE* progress) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  in.close();
  std::string kept;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    const bool good = record.is_object() && record.contains("step") && record["step"].is_number_integer();
    if (!good && i + 1 == lines.size()) {
      if (progress) std::fprintf(progress, "%s: line %zu was cut short (the run stopped while writing it); dropped it\n",
                                 path.c_str(), i + 1);
      break;
    }
    VDIT_CHECK(good, path << ": line " << i + 1 << " is not a JSON record with a step; fix or remove it to resume");
    if (record["step"].get<int64_t>() <= step) kept += lines[i] + "\n";
  }
  write_text_atomically(path, kept);
}

// Reads back what a new checkpoint says before older ones are pruned: a checkpoint that cannot
// be resumed from must never be the only one left.
void verify_checkpoint(const std::string& dir, const RunState& saved, const ParameterMap& params) {
  VDIT_CHECK(RunState::load((fs::path(dir) / "state").string()) == saved, dir << "/state does not read back as written");
  const Hdf5File model((fs::path(dir) / "model.h5").string(), Hdf5File::Mode::Read);
  for (const auto& [key, value] : params)
    VDIT_CHECK(model.has(key) && model.shape(key) == value.shape(),
               model.path() << ": parameter '" << key << "' does not read back as written");
  const Hdf5File optimizer((fs::path(dir) / "optimizer.h5").string(), Hdf5File::Mode::Read);
}

// Samples [begin, end) of a batched tensor: the whole tensor in one process, else a copy.
Tensor batch_rows(const Tensor& t, BatchShare share) {
  if (share.begin == 0 && share.end == t.size(0)) return t;
  Shape shape = t.shape();
  const int64_t per_sample = t.numel() / shape[0];
  shape[0] = share.end - share.begin;
  Tensor rows = Tensor::empty(shape);
  std::copy_n(t.data() + share.begin * per_sample, rows.numel(), rows.data());
  return rows;
}

}  // namespace

std::unique_ptr<Model> load_run_model(const std::string& path, const std::string& config_path, bool frozen_bf16,
                                      const std::string& adapter, const std::string& fixed_temperature,
                                      std::string* identity) {
  // The identity an adapter is tied to is that of the weights as stored, whatever precision they
  // are held in (a GPU holds them as bf16): it is taken before they are narrowed.
  const bool needs_identity = identity || !adapter.empty();
  LoadOptions load;
  load.config_path = config_path;
  load.frozen_bf16 = frozen_bf16 && !needs_identity;
  std::unique_ptr<Model> model = load_family_model(path, load).model;
  ParameterMap changed;
  if (needs_identity) {
    const std::string base = family_model_identity(*model);
    if (identity) *identity = base;
    if (frozen_bf16)
      for (const auto& [key, value] : model->parameters()) changed[key] = value.to_bf16();
    if (!adapter.empty()) apply_adapter(adapter, read_adapter(adapter), base, changed);
  }
  if (!fixed_temperature.empty())
    for (const auto& [key, value] : fixed_temperatures(fixed_temperature, *model, "--set-temperature")) changed[key] = value;
  if (!changed.empty()) model->set_parameters(changed);
  return model;
}

std::string start_report_dir(const std::string& run_dir) { return (fs::path(run_dir) / "diagnostics-start").string(); }

std::string adapter_path(const std::string& run_dir) { return (fs::path(run_dir) / "adapter.h5").string(); }

std::string train_log_path(const std::string& run_dir) { return (fs::path(run_dir) / "train_log.jsonl").string(); }

Retrainer::Retrainer(RetrainOptions options, DataParallel& group)
    : options_(std::move(options)), group_(group), sum_gradients_(group), data_(LatentDataset::open(options_.data)) {
  VDIT_CHECK(!options_.out.empty(), "no run directory given (--out)");
  if (!options_.resume.empty()) options_.resume = normalise_checkpoint_path(options_.resume);
  VDIT_CHECK(options_.steps >= 1, "--steps must be at least 1, got " << options_.steps);
  VDIT_CHECK(options_.batch_size >= 1, "--batch-size must be at least 1, got " << options_.batch_size);
  VDIT_CHECK(options_.grad_accum >= 1, "--grad-accum must be at least 1, got " << options_.grad_accum);
  options_.lr.total_steps = options_.steps;
  const bool resuming = !options_.resume.empty();
  if (!resuming)
    VDIT_CHECK(list_checkpoints(options_.out).empty(),
               options_.out << " already holds checkpoints; continue with --resume " << list_checkpoints(options_.out).back()
                            << " or choose another --out");

  // A resume takes every value, trained ones included, from the checkpoint: as float32, so that
  // the trained ones continue exactly (make_trainable narrows the frozen ones).
  const bool tuning = options_.tune_temperature;
  const bool frozen_bf16 = options_.frozen_bf16 || options_.device.is_cuda();
  if (resuming) {
    model_ = load_family_model((fs::path(options_.resume) / "model.h5").string()).model;
    if (tuning) base_identity_ = read_adapter((fs::path(options_.resume) / "adapter.h5").string()).model_identity;
  } else {
    model_ = load_run_model(options_.model, options_.config, frozen_bf16, options_.adapter, "",
                            tuning ? &base_identity_ : nullptr);
  }
  model_->set_recompute_frozen_blocks(options_.recompute_frozen);
  const ModelFacts facts = model_->facts();
  check_data_fits(data_, facts);
  if (!options_.teacher.empty()) {
    teacher_ = load_run_model(options_.teacher, "", frozen_bf16, options_.teacher_adapter,
                              options_.teacher_temperature);
    teacher_->to(options_.device);
    const ModelFacts t = teacher_->facts();
    VDIT_CHECK(t.in_channels == facts.in_channels && t.out_channels == facts.out_channels && t.patch == facts.patch &&
                   t.text_dim == facts.text_dim,
               options_.teacher << ": the teacher's inputs and outputs differ from the model's");
  }

  thresholds_ = options_.diagnostic_checks.empty() ? Thresholds::defaults() : Thresholds::load(options_.diagnostic_checks);
  const std::string start_h5 = (fs::path(start_report_dir(options_.out)) / "diagnostics.h5").string();
  if (resuming && fs::exists(start_h5)) start_report_ = std::make_unique<DiagnosticsReport>(read_diagnostics_h5(start_h5));

  std::set<std::string> names;
  if (tuning) {
    const ParameterMap units = unit_temperatures(*model_, parse_block_list(options_.temperature_blocks, *model_, "--blocks"),
                                                 options_.granularity, options_.cross_attn_temperature);
    ParameterMap missing;  // temperatures an adapter already set keep their values
    for (const auto& [key, value] : units) {
      names.insert(key);
      if (!model_->parameters().count(key)) missing[key] = value;
    }
    model_->set_parameters(missing);
  } else {
    const LayerSelection selection = parse_layer_spec(options_.layers, *model_);
    names = selection.names;
    if (selection.auto_blocks > 0) {
      // auto:K: the K blocks the starting model's diagnostics rank worst. A resume finds them
      // already in the checkpoint's trained values, chosen the same way.
      if (!start_report_) start_report_ = std::make_unique<DiagnosticsReport>(diagnose_now("start"));
      const std::vector<int> ranked = rank_blocks_worst_first(*start_report_);
      const std::vector<int> worst(ranked.begin(), ranked.begin() + std::min<size_t>(selection.auto_blocks, ranked.size()));
      for (const std::string& n : block_parameter_names(*model_, worst)) names.insert(n);
    }
    VDIT_CHECK(!names.empty(), "--layers " << options_.layers << " selects no parameter");
  }
  std::vector<TrainableParameter> trainable = make_trainable(
      *model_, names, resuming || tuning ? InitMode::Keep : options_.init, options_.seed, frozen_bf16, options_.device);
  optimizer_ = make_optimizer(options_.optimizer, std::move(trainable), options_.adamw, options_.sgd);
  sampler_ = std::make_unique<BatchSampler>(data_, options_.batch_size);

  if (resuming) {
    state_ = RunState::load((fs::path(options_.resume) / "state").string());
    const nlohmann::json stored = nlohmann::json::parse(state_.run_config);
    const int ranks = stored.value("ranks", 1);  // absent before data-parallel runs
    VDIT_CHECK(ranks == group_.size(),
               options_.resume << " was written by a run on " << ranks << " rank(s); resume it on as many (mpirun -np "
                               << ranks << "), not " << group_.size()
                               << ": the gradients would be summed in another order and the run would not continue "
                                  "exactly (README, \"Data-parallel retraining\")");
    const std::string differences = config_differences(stored, stored_run_config());
    VDIT_CHECK(differences.empty(), options_.resume << ": this run's options differ from the checkpoint's: " << differences);
    optimizer_->load((fs::path(options_.resume) / "optimizer.h5").string());
    VDIT_CHECK(optimizer_->steps() == state_.step, options_.resume << ": optimizer.h5 has " << optimizer_->steps()
                                                                   << " steps but state has " << state_.step);
    sigma_rng_.set_state(state_.sigma_rng);
    noise_rng_.set_state(state_.noise_rng);
    data_rng_.set_state(state_.data_rng);
    state_.run_config = stored_run_config().dump();  // the (possibly extended) step count
    last_checkpoint_ = options_.resume;
  } else {
    sigma_rng_.reseed(options_.seed ^ kSigmaStream);
    noise_rng_.reseed(options_.seed ^ kNoiseStream);
    data_rng_.reseed(options_.seed ^ kDataStream);
    state_.run_config = stored_run_config().dump();
  }
}

nlohmann::json Retrainer::stored_run_config() const {
  nlohmann::json config = options_.run_config();
  config["ranks"] = group_.size();
  return config;
}

DiagnosticsReport Retrainer::diagnose_now(const std::string& label) const {
  DiagnoseOptions probe = options_.diagnose;
  for (double& sigma : probe.sigmas) sigma = shift_sigma(sigma, options_.flow.shift);
  DiagnosticsReport report = diagnose(*model_, data_, probe);
  report.model = label;
  return report;
}

std::vector<int> Retrainer::trained_blocks() const {
  std::set<int> blocks;
  for (const TrainableParameter& p : trainable())
    if (p.name.rfind("blocks.", 0) == 0) blocks.insert(std::stoi(p.name.substr(7)));
  return {blocks.begin(), blocks.end()};
}

void Retrainer::fail_not_finite(const std::string& what) const {
  Tape::clear();
  for (const TrainableParameter& p : trainable()) p.value.zero_grad();
  VDIT_FAIL("step " << state_.step + 1 << ": " << what << " while training --layers " << options_.layers
                    << "; last good checkpoint: " << (last_checkpoint_.empty() ? "none written yet" : last_checkpoint_));
}

nlohmann::json Retrainer::step() {
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0.0, sigma_min = 1.0, sigma_max = 0.0, sigma_sum = 0.0;
  int64_t sigma_count = 0;
  const Device device = options_.device;
  // Read once the step's work is done (a GPU waits once per step), with their shares' weights.
  std::vector<std::pair<Tensor, double>> losses;
  for (int64_t micro = 0; micro < options_.grad_accum; ++micro) {
    const std::vector<int64_t> indices = sampler_->next(data_rng_, state_.epoch, state_.cursor, state_.order);
    const auto size = static_cast<int64_t>(indices.size());
    // Every rank draws the noise levels and noise of the whole batch, as one process does, so
    // that the random streams stay alike on every rank and each sample gets the same draws
    // whatever the rank count; then it reads and computes only its share of the samples. The
    // draws are made on the host, so a run draws the same on every device.
    std::vector<double> sigmas(indices.size());
    for (double& s : sigmas) {
      s = sample_sigma(options_.flow, sigma_rng_);
      sigma_min = std::min(sigma_min, s);
      sigma_max = std::max(sigma_max, s);
      sigma_sum += s;
      ++sigma_count;
    }
    Shape shape = data_.latent_shape(indices[0]);
    shape.insert(shape.begin(), size);
    const Tensor noise = noise_rng_.normal_tensor(shape);
    const BatchShare share = batch_share(size, group_.rank(), group_.size());
    if (share.end == share.begin) continue;  // a batch smaller than the rank count
    const Batch batch = collate(data_, {indices.begin() + share.begin, indices.begin() + share.end});
    NoisyBatch noisy = make_noisy_batch_with(batch.latents, {sigmas.begin() + share.begin, sigmas.begin() + share.end},
                                             options_.flow.weighting, batch_rows(noise, share))
                           .to(device);
    ModelInputs inputs{noisy.x_sigma, {}, batch.context.to(device),
                       batch.context_mask.defined() ? batch.context_mask.to(device) : Tensor()};
    for (double s : noisy.sigmas) inputs.timesteps.push_back(1000.0 * s);
    if (teacher_) {
      NoGradScope no_grad;
      noisy.target = teacher_->velocity(inputs, nullptr);
    }
    const Tensor loss = flow_matching_loss(model_->velocity(inputs, nullptr), noisy);
    // The share's mean loss weighted by its part of the batch: the ranks' terms (and their
    // gradients) add up to the batch's mean.
    const int64_t part = share.end - share.begin;
    scale(loss, static_cast<float>(part) / static_cast<float>(size * options_.grad_accum)).backward();
    losses.emplace_back(loss, static_cast<double>(part) / static_cast<double>(size));
  }
  const double sum_seconds = sum_gradients_(trainable());
  // The gradient norm is the step's one wait for the device; the losses are ready after it. A
  // non-finite loss is reported before the gradient it made (by the rank whose share made it).
  const double grad_norm = clip_grad_norm(trainable(), options_.clip_grad);
  for (const auto& [loss, weight] : losses) {
    const double value = loss.item();
    if (!std::isfinite(value)) fail_not_finite("the loss is " + std::to_string(value));
    loss_sum += value * weight;
  }
  group_.sum(&loss_sum, 1);
  if (!std::isfinite(grad_norm)) {
    for (const TrainableParameter& p : trainable()) {
      const Tensor g = p.value.grad();
      if (!g.defined()) continue;
      for (float v : g.to_vector())
        if (!std::isfinite(v)) fail_not_finite("the gradient of '" + p.name + "' is not finite");
    }
    fail_not_finite("the gradient norm is not finite");
  }
  const double lr = options_.lr.at(state_.step);
  optimizer_->step(lr);
  for (const TrainableParameter& p : trainable()) p.value.zero_grad();
  ++state_.step;
  const double loss = loss_sum / static_cast<double>(options_.grad_accum);
  state_.smoothed_loss = state_.step == 1 ? loss : 0.9 * state_.smoothed_loss + 0.1 * loss;
  nlohmann::json record = {{"step", state_.step},
                           {"loss", loss},
                           {"smoothed_loss", state_.smoothed_loss},
                           {"lr", lr},
                           {"grad_norm", grad_norm},
                           {"sigma_mean", sigma_sum / static_cast<double>(sigma_count)},
                           {"sigma_min", sigma_min},
                           {"sigma_max", sigma_max},
                           {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
  // Time in the sums across ranks, waiting for the slowest rank included.
  if (group_.size() > 1) record["gradient_sum_seconds"] = sum_seconds;
  return record;
}

Adapter Retrainer::adapter() const {
  Adapter a;
  a.model_identity = base_identity_;
  for (const TrainableParameter& p : trainable()) a.log_temperatures[p.name] = p.value.detach();
  return a;
}

std::string Retrainer::save_checkpoint() {
  RunState saved = state_;
  saved.sigma_rng = sigma_rng_.state();
  saved.noise_rng = noise_rng_.state();
  saved.data_rng = data_rng_.state();
  last_checkpoint_ = write_checkpoint_atomically(options_.out, state_.step, [&](const std::string& dir) {
    save_family_model((fs::path(dir) / "model.h5").string(), *model_, ModelFormat::H5);
    optimizer_->save((fs::path(dir) / "optimizer.h5").string());
    saved.save((fs::path(dir) / "state").string());
    if (options_.tune_temperature) write_adapter((fs::path(dir) / "adapter.h5").string(), adapter());
    if (options_.diagnostics) {
      const DiagnosticsReport report = diagnose_now("step " + std::to_string(state_.step));
      const std::string extra = loss_curve_html(train_log_path(options_.out)) +
                                validation_samples_html(*model_, data_, options_.validation_samples,
                                                        options_.flow.shift, dir);
      write_report(dir, report, thresholds_, start_report_.get(), extra);
      last_verdicts_ = check_thresholds(report, thresholds_);
    }
  });
  verify_checkpoint(last_checkpoint_, saved, model_->parameters());
  prune_checkpoints(options_.out, options_.keep_last);
  return last_checkpoint_;
}

bool Retrainer::checkpoint_due() const {
  return options_.checkpoint_every > 0 && state_.step % options_.checkpoint_every == 0 && state_.step < options_.steps;
}

RetrainSummary Retrainer::follow() {
  RetrainSummary summary;
  summary.start_step = state_.step;
  while (state_.step < options_.steps) {
    const nlohmann::json record = step();
    if (state_.step == summary.start_step + 1) summary.first_loss = record["loss"];
    // Rank 0 writes it now; named in this rank's errors as the last good one.
    if (checkpoint_due()) last_checkpoint_ = (fs::path(options_.out) / checkpoint_name(state_.step)).string();
  }
  summary.end_step = state_.step;
  summary.last_smoothed_loss = state_.smoothed_loss;
  summary.last_checkpoint = (fs::path(options_.out) / checkpoint_name(state_.step)).string();
  return summary;
}

RetrainSummary Retrainer::run(std::FILE* progress, const std::function<void(const nlohmann::json&)>& after_step) {
  if (group_.rank() != 0) return follow();
  fs::create_directories(options_.out);
  const std::string log_path = train_log_path(options_.out);
  const bool resuming = !options_.resume.empty();
  if (resuming) truncate_log(log_path, state_.step, progress);
  JsonLinesLog log(log_path, resuming);
  RetrainSummary summary;
  summary.start_step = state_.step;
  if (options_.diagnostics && !start_report_) {
    if (progress) std::fprintf(progress, "diagnosing the starting model\n");
    start_report_ = std::make_unique<DiagnosticsReport>(diagnose_now("start"));
  }
  if (start_report_ && !fs::exists(start_report_dir(options_.out)))
    write_report(start_report_dir(options_.out), *start_report_, thresholds_);
  // After each checkpoint's diagnosis: its verdicts in the log, and --stop-on-fail.
  auto check_diagnostics = [&] {
    if (!options_.diagnostics) return;
    nlohmann::json verdicts = nlohmann::json::object();
    std::string failed;
    const std::vector<int> trained = trained_blocks();
    for (const BlockVerdict& v : last_verdicts_) {
      verdicts[std::to_string(v.block)] = to_string(v.verdict);
      if (v.verdict == Verdict::Fail && std::count(trained.begin(), trained.end(), v.block))
        failed += (failed.empty() ? "" : ", ") + std::to_string(v.block) + " (" +
                  (v.reasons.empty() ? std::string("fail") : v.reasons.front()) + ")";
    }
    log.write({{"step", state_.step}, {"checkpoint", last_checkpoint_}, {"diagnostics", verdicts}});
    VDIT_CHECK(failed.empty() || !options_.stop_on_fail,
               "step " << state_.step << ": retrained block " << failed << " failed its diagnostic checks; stopping "
                       << "(--stop-on-fail); report: " << last_checkpoint_ << "/report.html");
  };
  ProgressLine line(options_.tune_temperature ? "tune-temperature" : "retrain", options_.steps, state_.step, progress);
  while (state_.step < options_.steps) {
    const nlohmann::json record = step();
    if (state_.step == summary.start_step + 1) summary.first_loss = record["loss"];
    log.write(record);
    char detail[128];
    std::snprintf(detail, sizeof detail, "loss %.4f  avg %.4f  lr %.2e", record["loss"].get<double>(),
                  state_.smoothed_loss, record["lr"].get<double>());
    line.update(state_.step, detail);
    if (after_step) after_step(record);
    if (checkpoint_due()) {
      log.sync();  // the log up to a checkpoint is as durable as the checkpoint
      save_checkpoint();
      check_diagnostics();
    }
  }
  line.finish();
  log.sync();
  summary.last_checkpoint = save_checkpoint();
  check_diagnostics();
  if (options_.tune_temperature) write_adapter(adapter_path(options_.out), adapter());
  summary.end_step = state_.step;
  summary.last_smoothed_loss = state_.smoothed_loss;
  return summary;
}

}  // namespace vdit
