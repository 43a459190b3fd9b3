// A disk that fills while a checkpoint is written (a small tmpfs, mounted in a private mount
// namespace): the run stops with an error naming the file, leaves no partial checkpoint, its
// last good checkpoint stays intact, and once space is freed a resume from it ends exactly as
// an uninterrupted run. Skipped where no tmpfs can be mounted (neither root nor unprivileged
// user namespaces).
#include <unistd.h>

#include <regex>

#include "tests/run_comparison.h"

namespace vdit {
namespace {

using testing::ScratchDir;
namespace fs = std::filesystem;

std::string run_flags(const ScratchDir& dir) {
  return " --model " + dir / "model.h5" + " --data " + dir / "data.h5" +
         " --layers 1 --steps 6 --checkpoint-every 2 --keep-last 0 --batch-size 2 --seed 5 --no-diagnostics";
}

uintmax_t bytes_under(const fs::path& dir) {
  uintmax_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) total += entry.file_size();
  return total;
}

std::string contents(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(FullDisk, CheckpointThatDoesNotFitStopsTheRunAndTheLastGoodOneResumes) {
  ScratchDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::write_tiny_model_and_data(dir));
  const std::string vditkit = testing::shell_line(testing::vditkit_command({}));
  const testing::CommandResult straight = testing::run_command(vditkit + " retrain" + run_flags(dir) + " --out " + dir / "straight");
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  // Room for one checkpoint and half of the next: the second one's write runs out of space.
  const uintmax_t checkpoint_bytes = bytes_under(dir / "straight/checkpoint-000002");
  const uintmax_t disk_kb = checkpoint_bytes * 3 / 2 / 1024 + 64;
  const std::string disk = dir / "disk";
  fs::create_directories(disk);
  std::ofstream(dir / "full_disk.sh")
      << "mount -t tmpfs -o size=" << disk_kb << "k vditkit-full-disk " << disk << " || exit 90\n"
      << vditkit << " retrain" << run_flags(dir) << " --out " << disk << "/run > " << dir / "full.txt" << " 2>&1\n"
      << "echo $? > " << dir / "full.rc" << "\n"
      << "cp -a " << disk << "/run " << dir / "after-full" << "\n"
      << "mount -o remount,size=1g " << disk << " || exit 91\n"
      << vditkit << " retrain --resume " << disk << "/run/checkpoint-000002 > " << dir / "resume.txt" << " 2>&1\n"
      << "echo $? > " << dir / "resume.rc" << "\n"
      << "cp -a " << disk << "/run " << dir / "resumed" << "\n";
  // As root a private mount namespace is enough; otherwise map ourselves to root in a user
  // namespace, where mounting a tmpfs is allowed.
  const std::string unshare = ::geteuid() == 0 ? "unshare -m" : "unshare -r -m";
  const testing::CommandResult r = testing::run_command(unshare + " sh " + dir / "full_disk.sh");
  if (r.exit_code != 0 && !fs::exists(dir / "full.rc"))
    GTEST_SKIP() << "cannot mount a tmpfs here (" << unshare << " and mount need root or unprivileged user "
                 << "namespaces; exit " << r.exit_code << "): " << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const std::string error = contents(dir / "full.txt");
  EXPECT_NE(contents(dir / "full.rc"), "0\n") << "the run did not stop when the disk filled: " << error;
  EXPECT_TRUE(std::regex_search(error, std::regex("checkpoint-000004[^ ]*/(model\\.h5|optimizer\\.h5|state)")))
      << "the error does not name the file being written: " << error;
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir / "after-full")) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"checkpoint-000002", "train_log.jsonl"})) << "a partial checkpoint was left";
  for (const char* file : {"model.h5", "optimizer.h5"})
    EXPECT_EQ(testing::dataset_bits(dir / "after-full/checkpoint-000002/" + file),
              testing::dataset_bits(dir / "straight/checkpoint-000002/" + file)) << file;

  EXPECT_EQ(contents(dir / "resume.rc"), "0\n") << contents(dir / "resume.txt");
  testing::expect_same_run(dir / "resumed", dir / "straight");
}

}  // namespace
}  // namespace vdit
