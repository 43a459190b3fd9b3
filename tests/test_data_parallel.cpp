// Data-parallel retraining (README "Data-parallel retraining"): how a batch is split across
// ranks, the gradient sum's bookkeeping (against a simulated second rank), and, where this
// build has MPI, real `mpirun -np 2` runs of the command: equal to one process within fp32
// summation-order rounding, bit-identical when repeated, stopped with the failing rank named,
// and resumed exactly after a rank was killed.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "data/latent_dataset.h"
#include "data/model_io.h"
#include "tests/run_comparison.h"
#include "train/data_parallel.h"
#include "train/gradient_sum.h"

namespace vdit {
namespace {

using testing::ScratchDir;

TEST(DataParallel, BatchShareSplitsContiguouslyInRankOrder) {
  EXPECT_EQ(batch_share(4, 0, 2).end, 2);
  EXPECT_EQ(batch_share(4, 1, 2).begin, 2);
  for (int64_t batch : {1, 2, 3, 7, 8}) {
    for (int ranks : {1, 2, 3, 4}) {
      int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const BatchShare s = batch_share(batch, r, ranks);
        EXPECT_EQ(s.begin, next) << batch << " samples, rank " << r << " of " << ranks;
        EXPECT_LE(s.end - s.begin, batch / ranks + 1);
        EXPECT_GE(s.end - s.begin, batch / ranks);
        next = s.end;
      }
      EXPECT_EQ(next, batch);
    }
  }
  EXPECT_THROW(batch_share(4, 2, 2), Error);
}

// Rank 0 of two, whose partner's values are given: its sums are this rank's plus the partner's.
class SimulatedPair final : public DataParallel {
 public:
  std::vector<float> partner_floats;
  std::vector<double> partner_doubles;
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  void sum(float* data, int64_t n) override {
    ASSERT_EQ(static_cast<size_t>(n), partner_floats.size());
    for (int64_t i = 0; i < n; ++i) data[i] += partner_floats[i];
  }
  void sum(double* data, int64_t n) override {
    ASSERT_EQ(static_cast<size_t>(n), partner_doubles.size());
    for (int64_t i = 0; i < n; ++i) data[i] += partner_doubles[i];
  }
  void sum_on_device(float*, int64_t, int) override { FAIL() << "no parameter is on a GPU"; }
  void abort(const std::string&) override {}
};

TEST(DataParallel, GradientSumFillsMissingGradientsAndLeavesUnusedOnesAlone) {
  auto parameter = [](const std::string& name, int64_t n) {
    return TrainableParameter{name, Tensor::zeros({n}).set_requires_grad(true)};
  };
  const std::vector<TrainableParameter> params{parameter("a", 3), parameter("b", 2), parameter("c", 2)};
  const std::vector<float> a{1, 2, 3};
  std::copy(a.begin(), a.end(), params[0].value.grad_ref()->buffer());  // "b": only the partner has one; "c": none
  SimulatedPair pair;
  pair.partner_doubles = {1, 1, 0};                 // the partner has gradients for a and b
  pair.partner_floats = {10, 20, 30, 0.5f, -0.5f};  // a's then b's, one flat buffer
  GradientSum sum(pair);
  sum(params);
  EXPECT_EQ(params[0].value.grad().to_vector(), (std::vector<float>{11, 22, 33}));
  EXPECT_EQ(params[1].value.grad().to_vector(), (std::vector<float>{0.5f, -0.5f}));
  EXPECT_FALSE(params[2].value.grad().defined()) << "no rank had a gradient: the optimizer must skip it";
}

#ifdef VDITKIT_MPIEXEC

VDiTConfig tiny_config() {
  return testing::small_config({.dim = 32, .ffn_dim = 64, .num_heads = 2, .num_layers = 3, .text_dim = 8, .text_len = 6, .freq_dim = 16});
}

// model.h5 with a random head (Wan's zero head would leave the blocks without gradients) and
// data.h5 of 8 samples.
void write_model_and_data(const ScratchDir& dir) {
  save_model(dir / "model.h5", tiny_config(), testing::params_with_random_head(tiny_config(), 1, 0.1f), ModelFormat::H5);
  write_latent_dataset(dir / "data.h5", testing::small_synthetic_samples(8));
}

// `vditkit ARGS` on `ranks` processes: mpirun, one OpenMP thread each, as root too, on any
// number of cores (--oversubscribe, no binding); 1 rank is a plain process.
std::vector<std::string> launch(int ranks, const std::vector<std::string>& args) {
  if (ranks == 1) return testing::vditkit_command(args);
  std::vector<std::string> command{VDITKIT_MPIEXEC, "-np", std::to_string(ranks), "--allow-run-as-root",
                                   "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1",
                                   VDITKIT_BINARY};
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

testing::CommandResult run(int ranks, const std::vector<std::string>& args) {
  return testing::run_command(testing::shell_line(launch(ranks, args)));
}

// Block 1 and the head retrained on a global batch of 3 (shares of 1 and 2 samples; the last
// batch of an epoch has 2) with 2 micro-batches per step.
std::vector<std::string> retrain(const ScratchDir& dir, const std::string& out, int steps, int every) {
  return {"retrain", "--model", dir / "model.h5", "--data", dir / "data.h5", "--layers", "1,head", "--steps",
          std::to_string(steps), "--checkpoint-every", std::to_string(every), "--keep-last", "0", "--batch-size", "3",
          "--grad-accum", "2", "--lr", "3e-3", "--seed", "7", "--no-diagnostics", "--out", dir / out};
}

TEST(DataParallelMpi, TwoRanksEqualOneRankToRoundingAndRepeatBitIdentically) {
  ScratchDir dir;
  write_model_and_data(dir);
  for (const auto& [ranks, out] : std::vector<std::pair<int, std::string>>{{1, "one"}, {2, "two"}, {2, "two-again"}}) {
    const testing::CommandResult r = run(ranks, retrain(dir, out, 20, 10));
    ASSERT_EQ(r.exit_code, 0) << out << ": " << r.output;
  }
  testing::expect_same_run(dir / "two-again", dir / "two");

  // Against one process: only the order of fp32 additions differs (the batch's gradient is
  // summed within one GEMM there, as two shares' sums added here). Measured after 20 steps
  // (SkylakeX and Haswell kernels): losses within 5e-8 relative, weights within 5e-7 absolute
  // (weights up to 1, AdamW moves each by up to 3e-3 a step); the bounds are 20 times those.
  const std::vector<nlohmann::json> one = testing::step_records(dir / "one"), two = testing::step_records(dir / "two");
  ASSERT_EQ(one.size(), 20u);
  ASSERT_EQ(two.size(), 20u);
  for (size_t i = 0; i < one.size(); ++i) {
    const double a = one[i]["loss"], b = two[i]["loss"];
    EXPECT_NEAR(b, a, 1e-6 * a) << "step " << i + 1;
    EXPECT_EQ(one[i]["sigma_mean"], two[i]["sigma_mean"]) << "the same noise levels on any rank count";
  }
  const LoadedModel a = load_model(dir / "one/checkpoint-000020/model.h5");
  const LoadedModel b = load_model(dir / "two/checkpoint-000020/model.h5");
  const LoadedModel start = load_model(dir / "model.h5");
  for (const auto& [key, t] : a.params) {
    EXPECT_LE(testing::max_abs_difference(b.params.at(key), t), 1e-5) << key;
    if (key.rfind("blocks.0.", 0) == 0) EXPECT_EQ(testing::bit_pattern(t), testing::bit_pattern(start.params.at(key))) << key;
  }
  EXPECT_GT(testing::max_abs_difference(a.params.at("blocks.1.ffn.0.weight"), start.params.at("blocks.1.ffn.0.weight")), 1e-3)
      << "block 1 should have learnt";
}

// Rank 1 reads a sample holding a NaN, after a checkpoint was written: every rank stops
// within seconds, the message names rank 1 and the sample, and the checkpoint is untouched.
TEST(DataParallelMpi, FailingRankStopsEveryRankNamingItAndKeepsTheCheckpoint) {
  ScratchDir dir;
  write_model_and_data(dir);
  // One batch of all 8 samples per epoch, in index order: rank 0 reads 0-3, rank 1 reads 4-7.
  std::vector<std::string> args = retrain(dir, "run", 2, 2);
  args[std::find(args.begin(), args.end(), "--batch-size") - args.begin() + 1] = "8";
  const testing::CommandResult first = run(2, args);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::string checkpoint = dir / "run/checkpoint-000002";
  const auto model_before = testing::dataset_bits(checkpoint + "/model.h5");
  const auto optimizer_before = testing::dataset_bits(checkpoint + "/optimizer.h5");
  const RunState state_before = RunState::load(checkpoint + "/state");

  std::vector<LatentSample> samples = testing::small_synthetic_samples(8);
  samples[6].latents.data()[5] = NAN;
  write_latent_dataset(dir / "data.h5", samples);
  const auto start = std::chrono::steady_clock::now();
  const testing::CommandResult failed = run(2, {"retrain", "--resume", checkpoint, "--steps", "4"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(failed.exit_code, 0) << failed.output;
  EXPECT_NE(failed.output.find("rank 1 of 2: error: "), std::string::npos) << failed.output;
  EXPECT_NE(failed.output.find("sample_000006/latents holds nan"), std::string::npos) << failed.output;
  EXPECT_LT(seconds, 30.0) << "the other rank waited for the failed one";
  EXPECT_EQ(list_checkpoints(dir / "run"), std::vector<std::string>{checkpoint});
  EXPECT_EQ(testing::dataset_bits(checkpoint + "/model.h5"), model_before);
  EXPECT_EQ(testing::dataset_bits(checkpoint + "/optimizer.h5"), optimizer_before);
  EXPECT_EQ(RunState::load(checkpoint + "/state"), state_before);
}

// The pid of rank `rank` among the children of `launcher` (mpirun forks the ranks of its own
// machine), from their environment; -1 when none is found.
pid_t rank_pid(pid_t launcher, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    char state;
    pid_t parent = -1;
    fields >> state >> parent;
    if (parent != launcher) continue;
    std::ifstream environ_file(entry.path() / "environ", std::ios::binary);
    for (std::string variable; std::getline(environ_file, variable, '\0');)
      if (variable == wanted) return std::stoi(name);
  }
  return -1;
}

// `kill -9` of rank 1 mid-run stops the run within seconds, naming the rank; its newest
// checkpoint resumes on 2 ranks to the same end as an uninterrupted 2-rank run (and is refused
// on 1 rank).
TEST(DataParallelMpi, KilledRankStopsTheRunAndItsCheckpointResumesExactly) {
  ScratchDir dir;
  write_model_and_data(dir);
  constexpr int kSteps = 32, kEvery = 4;
  const testing::CommandResult straight = run(2, retrain(dir, "straight", kSteps, kEvery));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  const pid_t launcher = testing::spawn_command(launch(2, retrain(dir, "killed", kSteps, kEvery)), dir / "killed.txt");
  int status = -1;
  while (status == -1 && list_checkpoints(dir / "killed").empty()) status = testing::wait_for(launcher, 0.005);
  ASSERT_EQ(status, -1) << "the run ended before a rank could be killed";
  const pid_t rank1 = rank_pid(launcher, 1);
  ASSERT_GT(rank1, 0) << "rank 1 not found among mpirun's children";
  ::kill(rank1, SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  status = testing::wait_for(launcher, 60);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::ifstream output_file(dir / "killed.txt");
  const std::string output((std::istreambuf_iterator<char>(output_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(status, 0) << output;
  EXPECT_NE(status, -1) << "mpirun still runs a minute after rank 1 was killed";
  EXPECT_LT(seconds, 30.0);
  EXPECT_NE(output.find("rank 1"), std::string::npos) << output;
  const std::vector<std::string> checkpoints = list_checkpoints(dir / "killed");
  ASSERT_FALSE(checkpoints.empty());
  ASSERT_LT(checkpoints.back(), dir / "killed/" + checkpoint_name(kSteps)) << "the run ended before the kill";

  const testing::CommandResult one = run(1, {"retrain", "--resume", checkpoints.back()});
  EXPECT_NE(one.exit_code, 0);
  EXPECT_NE(one.output.find("was written by a run on 2 rank(s); resume it on as many (mpirun -np 2), not 1"),
            std::string::npos)
      << one.output;
  const testing::CommandResult resumed = run(2, {"retrain", "--resume", checkpoints.back()});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  testing::expect_same_run(dir / "killed", dir / "straight");
}

#endif  // VDITKIT_MPIEXEC

}  // namespace
}  // namespace vdit
