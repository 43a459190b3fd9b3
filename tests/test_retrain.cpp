// The retraining loop on a tiny model and synthetic data: a reinitialised block recovers
// towards the pretrained loss, frozen weights stay bit-identical, the backward pass stops at
// the first trainable block, an interrupted run resumes bit-identically, a NaN stops the run
// with a clear message, and the command's flags do what they say.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "autograd/check.h"
#include "autograd/tape.h"
#include "data/hdf5_file.h"
#include "data/model_io.h"
#include "data/synthetic_data.h"
#include "layers/init.h"
#include "layers/vdit.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/checkpoint_dir.h"
#include "train/evaluation.h"
#include "train/layer_selection.h"
#include "train/trainable.h"
#include "train/trainer.h"

namespace vdit {
namespace {

using testing::run_vditkit;
using testing::ScratchDir;

VDiTConfig tiny_config() {
  return testing::small_config({.dim = 32, .ffn_dim = 64, .num_heads = 2, .num_layers = 3, .text_dim = 8, .text_len = 6, .freq_dim = 16});
}

// A fresh model and a synthetic dataset in `dir`: model.h5 and data.h5. The head is drawn
// at random (Wan's init zeroes it, which would leave every block without a gradient).
void write_model_and_data(const ScratchDir& dir, int64_t samples = 12) {
  save_model(dir / "model.h5", tiny_config(), testing::params_with_random_head(tiny_config(), 1, 0.1f), ModelFormat::H5);
  write_latent_dataset(dir / "data.h5", testing::small_synthetic_samples(samples));
}

RetrainOptions base_options(const ScratchDir& dir, const std::string& out) {
  RetrainOptions o;
  o.model = dir / "model.h5";
  o.data = {dir / "data.h5"};
  o.out = dir / out;
  o.batch_size = 4;
  o.lr.base_lr = 3e-3;
  o.lr.decay = LrDecay::Constant;
  o.flow.shift = 1.0;
  return o;
}

// Block 1 retrained for `steps` without diagnostics, a checkpoint every `every` steps.
RetrainOptions short_run(const ScratchDir& dir, const std::string& out, int64_t steps, int64_t every) {
  RetrainOptions o = base_options(dir, out);
  o.diagnostics = false;
  o.layers = "1";
  o.steps = steps;
  o.checkpoint_every = every;
  return o;
}

std::vector<double> logged_losses(const std::string& run_dir) {
  std::vector<double> losses;
  std::ifstream in(train_log_path(run_dir));
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json record = nlohmann::json::parse(line);
    if (record.contains("loss")) losses.push_back(record["loss"]);  // not the diagnostics records
  }
  return losses;
}

std::vector<uint32_t> bits(const Tensor& t) { return testing::bit_pattern(t); }

TEST(Retrain, ReinitialisedBlockRecoversTowardsThePretrainedLoss) {
  ScratchDir dir;
  write_model_and_data(dir);
  // "Pretrain" the whole tiny model, then knock out block 1 and retrain only it.
  RetrainOptions pre = base_options(dir, "pretrain");
  pre.layers = "all";
  pre.init = InitMode::Keep;
  pre.steps = 300;
  Retrainer pretrainer(pre);
  const std::string pretrained = pretrainer.run(nullptr).last_checkpoint;
  const double pretrained_loss = evaluate_loss(pretrainer.model(), pretrainer.data());

  RetrainOptions re = base_options(dir, "retrain");
  re.model = pretrained + "/model.h5";
  re.layers = "1";
  re.steps = 300;
  Retrainer retrainer(re);
  const double knocked_out_loss = evaluate_loss(retrainer.model(), retrainer.data());
  retrainer.run(nullptr);
  const double recovered_loss = evaluate_loss(retrainer.model(), retrainer.data());
  EXPECT_GT(knocked_out_loss, pretrained_loss * 1.05);
  EXPECT_LT(recovered_loss - pretrained_loss, 0.5 * (knocked_out_loss - pretrained_loss))
      << "pretrained " << pretrained_loss << ", knocked out " << knocked_out_loss << ", recovered " << recovered_loss;
}

TEST(Retrain, FrozenParametersStayBitIdentical) {
  ScratchDir dir;
  write_model_and_data(dir);
  RetrainOptions o = base_options(dir, "run");
  o.layers = "1.ffn,2.self_attn";
  o.steps = 5;
  Retrainer trainer(o);
  const std::string checkpoint = trainer.run(nullptr).last_checkpoint;
  const LoadedModel before = load_model(dir / "model.h5");
  const LoadedModel after = load_model(checkpoint + "/model.h5");
  std::set<std::string> trained;
  for (const TrainableParameter& p : trainer.trainable()) trained.insert(p.name);
  EXPECT_EQ(trained.size(), 4u + 8u + 2u);  // ffn: 2 weights 2 biases; self_attn: q,k,v,o and two norms
  for (const auto& [key, t] : before.params) {
    if (trained.count(key)) {
      EXPECT_NE(bits(after.params.at(key)), bits(t)) << key << " should have learnt";
    } else {
      EXPECT_EQ(bits(after.params.at(key)), bits(t)) << key << " is frozen";
    }
  }
}

TEST(Retrain, BackwardStopsAtTheFirstTrainableBlock) {
  // Ops are recorded (and their inputs saved) only from the first trainable block on: each
  // block further back adds the same number of tape entries, and a frozen model records none.
  ScratchDir dir;
  write_model_and_data(dir);
  const LoadedModel loaded = load_model(dir / "model.h5");
  const Tensor latents = Tensor::zeros({1, 4, 1, 4, 4}), context = Tensor::zeros({1, 4, 8});
  auto recorded_with_block = [&](int block) {
    VDiT model(loaded.config, loaded.params);
    if (block >= 0) make_trainable(model, block_parameter_names(model, {block}), InitMode::Keep, 0);
    Tape::clear();
    reset_tensor_memory_peak();
    const int64_t live_before = tensor_memory().live_bytes;
    model.forward(latents, {500.0}, context);
    const size_t entries = Tape::size();
    const int64_t held = tensor_memory().live_bytes - live_before;
    Tape::clear();
    return std::make_pair(entries, held);
  };
  const auto none = recorded_with_block(-1), last = recorded_with_block(2), middle = recorded_with_block(1),
             first = recorded_with_block(0);
  EXPECT_EQ(none.first, 0u);
  EXPECT_GT(last.first, 0u);
  EXPECT_EQ(first.first - middle.first, middle.first - last.first);
  EXPECT_GT(middle.first, last.first);
  EXPECT_LT(last.second, middle.second);  // less saved for backward
  EXPECT_LT(middle.second, first.second);
}

// Runs 6 steps straight and 6 steps interrupted after step 5 and resumed from step 3; both must
// end bit-identically.
void expect_exact_resume(bool frozen_bf16) {
  ScratchDir dir;
  write_model_and_data(dir);
  RetrainOptions o = base_options(dir, "straight");
  o.layers = "0,2";
  o.steps = 6;
  o.checkpoint_every = 3;
  o.batch_size = 3;
  o.grad_accum = 2;
  o.lr.decay = LrDecay::Cosine;
  o.lr.warmup_steps = 2;
  o.frozen_bf16 = frozen_bf16;
  Retrainer(o).run(nullptr);

  RetrainOptions crashed = o;
  crashed.out = dir / "crashed";
  struct Crash {};
  EXPECT_THROW(Retrainer(crashed).run(nullptr, [](const nlohmann::json& record) {
    if (record["step"] == 5) throw Crash{};  // after step 5 was logged, before any checkpoint
  }), Crash);
  EXPECT_EQ(logged_losses(crashed.out).size(), 5u);
  RetrainOptions resumed = crashed;
  resumed.resume = crashed.out + "/checkpoint-000003";
  Retrainer(resumed).run(nullptr);

  EXPECT_EQ(logged_losses(crashed.out), logged_losses(o.out));
  const LoadedModel a = load_model(o.out + "/checkpoint-000006/model.h5");
  const LoadedModel b = load_model(crashed.out + "/checkpoint-000006/model.h5");
  for (const auto& [key, t] : a.params) EXPECT_EQ(bits(b.params.at(key)), bits(t)) << key;
  Hdf5File opt_a(o.out + "/checkpoint-000006/optimizer.h5", Hdf5File::Mode::Read);
  Hdf5File opt_b(crashed.out + "/checkpoint-000006/optimizer.h5", Hdf5File::Mode::Read);
  EXPECT_EQ(bits(opt_a.read("exp_avg_sq/blocks.2.ffn.0.weight")), bits(opt_b.read("exp_avg_sq/blocks.2.ffn.0.weight")));
}

TEST(Retrain, InterruptedRunResumesBitIdentically) { expect_exact_resume(false); }

// The checkpoint's trained values are float32; the resume must not narrow them with the frozen ones.
TEST(Retrain, InterruptedRunWithFrozenBf16ResumesBitIdentically) { expect_exact_resume(true); }

TEST(Retrain, NonFiniteLossStopsTheRunNamingStepLayersAndCheckpoint) {
  ScratchDir dir;
  write_model_and_data(dir, 4);
  ParameterMap params = testing::params_with_random_head(tiny_config(), 1, 0.1f);
  params["head.head.bias"].data()[0] = NAN;  // the data is checked on reading; a model is not
  save_model(dir / "nan.h5", tiny_config(), params, ModelFormat::H5);
  RetrainOptions o = base_options(dir, "run");
  o.model = dir / "nan.h5";
  o.diagnostics = false;  // the diagnosis of the starting model would stop first
  o.layers = "1";
  o.steps = 3;
  try {
    Retrainer(o).run(nullptr);
    FAIL() << "a NaN loss did not stop the run";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("step 1: the loss is nan"), std::string::npos) << message;
    EXPECT_NE(message.find("--layers 1"), std::string::npos) << message;
    EXPECT_NE(message.find("last good checkpoint: none written yet"), std::string::npos) << message;
  }
}

// A kill while a log record is written leaves a line cut short at the end of the log: a
// resume drops it, says so, and goes on as if the kill had come a moment earlier.
TEST(Retrain, TornLastLogLineIsDroppedOnResume) {
  ScratchDir dir;
  write_model_and_data(dir);
  const RetrainOptions o = short_run(dir, "straight", 4, 2);
  Retrainer(o).run(nullptr);

  RetrainOptions crashed = o;
  crashed.out = dir / "crashed";
  struct Crash {};
  EXPECT_THROW(Retrainer(crashed).run(nullptr, [](const nlohmann::json& record) {
    if (record["step"] == 3) throw Crash{};
  }), Crash);
  std::ofstream(train_log_path(crashed.out), std::ios::app) << R"({"step":4,"loss":0.12)";
  RetrainOptions resumed = crashed;
  resumed.resume = crashed.out + "/checkpoint-000002";
  char* said = nullptr;
  size_t said_size = 0;
  std::FILE* progress = open_memstream(&said, &said_size);
  Retrainer(resumed).run(progress);
  std::fclose(progress);
  const std::string message(said, said_size);
  std::free(said);
  EXPECT_NE(message.find("train_log.jsonl: line 4 was cut short"), std::string::npos) << message;
  EXPECT_EQ(logged_losses(crashed.out), logged_losses(o.out));
}

TEST(Retrain, BadLogLineBeforeTheLastIsNamedOnResume) {
  ScratchDir dir;
  write_model_and_data(dir);
  const RetrainOptions o = short_run(dir, "run", 3, 1);
  Retrainer(o).run(nullptr);
  std::string log;
  {
    std::ifstream in(train_log_path(o.out));
    std::string line;
    for (int i = 0; std::getline(in, line); ++i) log += (i == 1 ? "not json" : line) + "\n";
  }
  std::ofstream(train_log_path(o.out)) << log;
  RetrainOptions resumed = o;
  resumed.resume = o.out + "/checkpoint-000002";
  EXPECT_EQ(testing::error_of([&] { Retrainer(resumed).run(nullptr); }),
            train_log_path(o.out) + ": line 2 is not a JSON record with a step; fix or remove it to resume");
}

// --- the command ---

TEST(RetrainCommand, FlagsReachTheRun) {
  ScratchDir dir;
  write_model_and_data(dir);
  const testing::CommandResult r = run_vditkit(
      "retrain --model " + dir / "model.h5" + " --data " + dir / "data.h5" + " --out " + dir / "run" +
      " --layers 2.ffn --init keep --steps 4 --seed 3 --batch-size 2 --grad-accum 2 --timestep-sampling logit-normal"
      " --logit-mean 0.5 --logit-std 0.8 --shift 3 --loss-weighting cosmap --optimizer sgd --momentum 0.5 --nesterov"
      " --lr 0.01 --warmup 2 --lr-decay constant --weight-decay 0.001 --clip-grad 0.5 --checkpoint-every 1"
      " --keep-last 2 --frozen-bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(list_checkpoints(dir / "run").size(), 2u);  // --keep-last
  std::vector<nlohmann::json> log;
  std::ifstream in(train_log_path(dir / "run"));
  for (std::string line; std::getline(in, line);)
    if (nlohmann::json record = nlohmann::json::parse(line); record.contains("loss")) log.push_back(record);
  ASSERT_EQ(log.size(), 4u);
  EXPECT_DOUBLE_EQ(log[0]["lr"].get<double>(), 0.005);  // warmup: (s + 1) / 2 of --lr
  EXPECT_DOUBLE_EQ(log[3]["lr"].get<double>(), 0.01);   // then constant
  for (const auto& record : log) EXPECT_LE(record["sigma_max"].get<double>(), 1.0);
  const RunState state = RunState::load(dir / "run/checkpoint-000004/state");
  const nlohmann::json config = nlohmann::json::parse(state.run_config);
  EXPECT_EQ(config["optimizer"], "sgd");
  EXPECT_EQ(config["nesterov"], true);
  EXPECT_EQ(config["loss_weighting"], "cosmap");
  EXPECT_EQ(config["timestep_sampling"], "logit-normal");
  EXPECT_EQ(config["frozen_bf16"], true);
  EXPECT_EQ(config["grad_accum"], 2);
  // Frozen weights held as bf16 are saved as their bf16 values.
  const Tensor frozen = load_model(dir / "run/checkpoint-000004/model.h5").params.at("blocks.0.ffn.0.weight");
  EXPECT_EQ(bits(frozen), bits(load_model(dir / "model.h5").params.at("blocks.0.ffn.0.weight").to_bf16().to_f32()));
}

// Wan's initialisation zeroes the output head, so no block of a created model gets a gradient;
// `create --head-std` draws the head instead (what a demo of retraining needs).
TEST(RetrainCommand, CreatedModelGetsGradientsWithARandomHead) {
  ScratchDir dir;
  ASSERT_EQ(run_vditkit("make-data --preset tiny --samples 2 --out " + dir / "data.h5").exit_code, 0);
  for (const std::string head : {"0", "0.02"}) {
    const std::string model = dir / ("model-" + head + ".h5"), run = dir / ("run-" + head);
    ASSERT_EQ(run_vditkit("create --preset tiny --layers 2 --head-std " + head + " --out " + model).exit_code, 0);
    const testing::CommandResult r = run_vditkit("retrain --model " + model + " --data " + dir / "data.h5" +
                                                 " --layers 0 --steps 1 --no-diagnostics --out " + run);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::ifstream in(train_log_path(run));
    std::string line;
    std::getline(in, line);
    const double grad_norm = nlohmann::json::parse(line)["grad_norm"];
    if (head == "0") EXPECT_EQ(grad_norm, 0.0);
    else EXPECT_GT(grad_norm, 0.0);
  }
}

TEST(RetrainCommand, ResumeRejectsAConflictingFlag) {
  ScratchDir dir;
  write_model_and_data(dir);
  ASSERT_EQ(run_vditkit("retrain --model " + dir / "model.h5" + " --data " + dir / "data.h5" + " --out " + dir / "run" +
                        " --layers 1 --steps 2").exit_code, 0);
  const testing::CommandResult r = run_vditkit("retrain --resume " + dir / "run/checkpoint-000002" + " --lr 0.5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--lr 0.5 differs from the run being resumed"), std::string::npos) << r.output;
  const testing::CommandResult extended = run_vditkit("retrain --resume " + dir / "run/checkpoint-000002" + " --steps 3");
  EXPECT_EQ(extended.exit_code, 0) << extended.output;
  EXPECT_EQ(logged_losses(dir / "run").size(), 3u);
}

std::vector<std::string> checkpoint_names(const std::string& run_dir) {
  std::vector<std::string> names;
  for (const std::string& path : list_checkpoints(run_dir)) names.push_back(std::filesystem::path(path).filename());
  return names;
}

// Issue 12: a resume took --checkpoint-every and --keep-last from the defaults (0 and 3), so
// a resumed run wrote no checkpoint until its end and pruned nothing.
TEST(RetrainCommand, ResumedRunKeepsCheckpointingAndPruning) {
  ScratchDir dir;
  write_model_and_data(dir);
  const std::string start = "retrain --no-diagnostics --layers 1 --model " + dir / "model.h5" + " --data " + dir / "data.h5";
  ASSERT_EQ(run_vditkit(start + " --out " + dir / "a" + " --steps 4 --checkpoint-every 2").exit_code, 0);
  const testing::CommandResult a = run_vditkit("retrain --resume " + dir / "a/checkpoint-000002" + " --steps 8");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_THAT(checkpoint_names(dir / "a"),
              ::testing::ElementsAre("checkpoint-000004", "checkpoint-000006", "checkpoint-000008"));

  ASSERT_EQ(run_vditkit(start + " --out " + dir / "b" + " --steps 4 --checkpoint-every 2 --keep-last 1").exit_code, 0);
  ASSERT_EQ(run_vditkit("retrain --resume " + dir / "b/checkpoint-000004" + " --steps 8").exit_code, 0);
  EXPECT_THAT(checkpoint_names(dir / "b"), ::testing::ElementsAre("checkpoint-000008"));
  // How often and how many may change on a resume, as --steps may.
  const testing::CommandResult b = run_vditkit("retrain --resume " + dir / "b/checkpoint-000008" +
                                               " --steps 10 --checkpoint-every 1 --keep-last 2");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_THAT(checkpoint_names(dir / "b"), ::testing::ElementsAre("checkpoint-000009", "checkpoint-000010"));
}

// Issue 12: "--resume DIR/" (shell completion adds the slash) continued the run inside the
// checkpoint directory, with a second train_log.jsonl there.
TEST(RetrainCommand, ResumeFromAPathWithATrailingSlashContinuesTheSameRunDirectory) {
  ScratchDir dir;
  write_model_and_data(dir);
  ASSERT_EQ(run_vditkit("retrain --no-diagnostics --layers 1 --model " + dir / "model.h5" + " --data " + dir / "data.h5" +
                        " --out " + dir / "run" + " --steps 2 --checkpoint-every 1").exit_code, 0);
  const testing::CommandResult r = run_vditkit("retrain --resume " + dir / "run/checkpoint-000001/" + " --steps 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(checkpoint_names(dir / "run"),
              ::testing::ElementsAre("checkpoint-000001", "checkpoint-000002", "checkpoint-000003"));
  EXPECT_TRUE(list_checkpoints(dir / "run/checkpoint-000001").empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "run/checkpoint-000001/train_log.jsonl"));
  EXPECT_EQ(logged_losses(dir / "run").size(), 3u);
}

TEST(RetrainCommand, ClearErrors) {
  ScratchDir dir;
  write_model_and_data(dir);
  const std::string common = "retrain --model " + dir / "model.h5" + " --data " + dir / "data.h5" + " --out " + dir / "run";
  auto fails_with = [&](const std::string& flags, const std::string& message) {
    const testing::CommandResult r = run_vditkit(common + " " + flags);
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_NE(r.output.find(message), std::string::npos) << flags << ": " << r.output;
  };
  fails_with("--layers auto:4", "--layers: 'auto:4' needs 1 <= K <= 3");
  fails_with("--layers 7", "--layers");
  fails_with("--init fresh", "unknown --init 'fresh'");
  fails_with("--optimizer lion", "lion");
  fails_with("--lr-decay linear", "linear");
  fails_with("--timestep-sampling beta", "beta");
  fails_with("--batch-size 0", "--batch-size must be at least 1");
  ASSERT_EQ(run_vditkit(common + " --steps 1").exit_code, 0);
  fails_with("--steps 1", "already holds checkpoints; continue with --resume");
}

}  // namespace
}  // namespace vdit
