// Kill-and-resume soak: a small retrain (the tiny preset, `vditkit create` + `make-data`) is
// killed with SIGKILL at seeded random moments and resumed each time from its newest
// checkpoint. It must end with the checkpoints, loss log, weights, optimizer moments and run
// state of an uninterrupted run, bit for bit; and no kill may lose more than one checkpoint
// interval, so a resumed run that stopped checkpointing fails here.
#include <signal.h>

#include <chrono>
#include <random>
#include <thread>

#include "tests/run_comparison.h"

namespace vdit {
namespace {

using testing::ScratchDir;

constexpr int kSteps = 40, kEvery = 2, kKills = 10;

std::vector<std::string> fresh_run(const ScratchDir& dir, const std::string& out) {
  return {"retrain", "--model", dir / "model.h5", "--data", dir / "data.h5", "--layers", "1", "--steps",
          std::to_string(kSteps), "--checkpoint-every", std::to_string(kEvery), "--keep-last", "3",
          "--batch-size", "2", "--seed", "5", "--no-diagnostics", "--out", dir / out};
}

int64_t checkpoint_step(const std::string& checkpoint) {
  return std::stoll(checkpoint.substr(checkpoint.rfind('-') + 1));
}

TEST(Soak, RunKilledAtRandomMomentsAndResumedEqualsAnUninterruptedRun) {
  ScratchDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::write_tiny_model_and_data(dir));
  // The uninterrupted run, timing its start-up (until its first step is logged) and its whole.
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const pid_t straight = testing::spawn_vditkit(fresh_run(dir, "straight"), dir / "straight.txt");
  int status = -1;
  while (status == -1 && testing::step_records(dir / "straight").empty()) status = testing::wait_for(straight, 0.005);
  const double startup_seconds = seconds_since_start();
  if (status == -1) status = testing::wait_to_end(straight);
  ASSERT_EQ(status, 0) << "see " << dir / "straight.txt";
  const double run_seconds = seconds_since_start();

  // Each kill lands after about a start-up and within 2 / kKills of the steps' time, so the
  // kills spread over the run and a last run still finishes it.
  std::mt19937_64 rng(20261201);
  std::uniform_real_distribution<double> moment(startup_seconds,
                                                startup_seconds + 2.0 * (run_seconds - startup_seconds) / kKills);
  const std::string soak = dir / "soak", output = dir / "soak.txt";
  int kills = 0;
  std::string killed_after;  // the last logged step at each kill, for the record
  for (;;) {
    const std::vector<std::string> checkpoints = list_checkpoints(soak);
    const pid_t pid = testing::spawn_vditkit(
        checkpoints.empty() ? fresh_run(dir, "soak") : std::vector<std::string>{"retrain", "--resume", checkpoints.back()},
        output);
    if (kills == kKills) {
      ASSERT_EQ(testing::wait_to_end(pid), 0) << "the last resume failed; see " << output;
      break;
    }
    const int ended = testing::wait_for(pid, moment(rng));
    if (ended == 0) break;  // finished before its kill
    ASSERT_EQ(ended, -1) << "the run failed; see " << output;
    ::kill(pid, SIGKILL);
    ASSERT_EQ(testing::wait_for(pid, 60), 128 + SIGKILL);
    ++kills;
    // A step is logged before its checkpoint is written: the kill may fall between the two.
    const std::vector<nlohmann::json> logged = testing::step_records(soak);
    const int64_t last_logged = logged.empty() ? 0 : logged.back()["step"].get<int64_t>();
    const std::vector<std::string> now = list_checkpoints(soak);
    const int64_t newest = now.empty() ? 0 : checkpoint_step(now.back());
    killed_after += " " + std::to_string(last_logged);
    ASSERT_GE(newest, last_logged - kEvery) << "killed after step " << last_logged << " with the newest checkpoint at "
                                            << newest << ": the run stopped writing checkpoints";
  }
  std::printf("[   INFO   ] uninterrupted run %.1f s (start-up %.1f s); %d kills, after steps%s\n", run_seconds,
              startup_seconds, kills, killed_after.c_str());
  EXPECT_GE(kills, kKills / 2);
  testing::expect_same_run(soak, dir / "straight");
}

}  // namespace
}  // namespace vdit
