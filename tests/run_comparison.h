#pragma once
// What the soak, full-disk and data-parallel tests share: running `vditkit retrain` as a child process they can
// kill, reading a run's loss log, and checking that an interrupted run ended exactly where an
// uninterrupted one did.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/hdf5_file.h"
#include "data/model_io.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/checkpoint_dir.h"
#include "train/run_state.h"
#include "train/trainer.h"

extern char** environ;

namespace vdit::testing {

// The command line that runs `vditkit ARGS` with one OpenMP thread. The model of these tests
// is tiny, so threads buy nothing, while threads spinning on a loaded machine would make a
// run's length, and so where the kills land, depend on what else runs. Results do not depend on
// the thread count (README, "Determinism").
inline std::vector<std::string> vditkit_command(const std::vector<std::string>& args) {
  std::vector<std::string> command{"/usr/bin/env", "OMP_NUM_THREADS=1", VDITKIT_BINARY};
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

inline std::string shell_line(const std::vector<std::string>& command) {
  std::string line;
  for (const std::string& word : command) line += (line.empty() ? "" : " ") + word;
  return line;
}

// Starts `command` with stdout and stderr appended to `output`; returns its pid.
inline pid_t spawn_command(std::vector<std::string> command, const std::string& output) {
  std::vector<char*> argv;
  for (std::string& word : command) argv.push_back(word.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  VDIT_CHECK(rc == 0, "cannot start " << argv[0] << ": " << std::strerror(rc));
  return pid;
}

// Waits for `pid` at most `seconds`; its exit status, or -1 if it still runs.
inline int wait_for(pid_t pid, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits for `pid` to finish on its own; one that runs past two minutes is killed (-1).
inline int wait_to_end(pid_t pid) {
  const int status = wait_for(pid, 120);
  if (status == -1) {
    ::kill(pid, SIGKILL);
    wait_for(pid, 60);
  }
  return status;
}

// Starts `vditkit ARGS` with stdout and stderr appended to `output`; returns its pid.
inline pid_t spawn_vditkit(const std::vector<std::string>& args, const std::string& output) {
  return spawn_command(vditkit_command(args), output);
}

// DIR/model.h5 (the tiny preset) and DIR/data.h5 (8 synthetic samples for it), made by the
// commands a user would run.
inline void write_tiny_model_and_data(const ScratchDir& dir) {
  for (const std::string& args : {"create --preset tiny --out " + dir / "model.h5",
                                   "make-data --preset tiny --samples 8 --out " + dir / "data.h5"}) {
    const CommandResult r = run_vditkit(args);
    ASSERT_EQ(r.exit_code, 0) << args << ": " << r.output;
  }
}

// The per-step records of a run's train_log.jsonl without their wall-clock "seconds" (and
// "gradient_sum_seconds" of data-parallel runs): what an exact resume must reproduce. A torn
// last line (a kill during its write) is not a record.
inline std::vector<nlohmann::json> step_records(const std::string& run_dir) {
  std::vector<nlohmann::json> records;
  std::ifstream in(train_log_path(run_dir));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.contains("loss")) continue;
    record.erase("seconds");
    record.erase("gradient_sum_seconds");
    records.push_back(record);
  }
  return records;
}

// Every float dataset of an HDF5 file, by path, as bit patterns.
inline std::map<std::string, std::vector<uint32_t>> dataset_bits(const std::string& path) {
  const Hdf5File file(path, Hdf5File::Mode::Read);
  std::map<std::string, std::vector<uint32_t>> bits;
  std::vector<std::string> groups{""};
  while (!groups.empty()) {
    const std::string group = groups.back();
    groups.pop_back();
    for (const std::string& name : file.datasets(group.empty() ? "/" : group))
      bits[group + "/" + name] = bit_pattern(file.read(group + "/" + name));
    for (const std::string& name : file.groups(group.empty() ? "/" : group)) groups.push_back(group + "/" + name);
  }
  return bits;
}

// `actual` (a run directory) ended exactly as `expected` did: the same checkpoints, the same
// per-step log, and its last checkpoint's weights, optimizer moments and run state bit for bit.
inline void expect_same_run(const std::string& actual, const std::string& expected) {
  auto names = [](const std::string& run) {
    std::vector<std::string> names;
    for (const std::string& c : list_checkpoints(run)) names.push_back(std::filesystem::path(c).filename().string());
    return names;
  };
  ASSERT_EQ(names(actual), names(expected));
  ASSERT_FALSE(names(expected).empty());
  EXPECT_EQ(step_records(actual), step_records(expected));
  const std::string a = list_checkpoints(actual).back(), e = list_checkpoints(expected).back();
  EXPECT_EQ(dataset_bits(a + "/model.h5"), dataset_bits(e + "/model.h5"));
  EXPECT_EQ(dataset_bits(a + "/optimizer.h5"), dataset_bits(e + "/optimizer.h5"));
  RunState sa = RunState::load(a + "/state"), se = RunState::load(e + "/state");
  sa.run_config = se.run_config = "";  // names the run's own directory
  EXPECT_EQ(sa, se);
}

}  // namespace vdit::testing
