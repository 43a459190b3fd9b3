#include "train/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "autograd/check.h"

namespace fs = std::filesystem;

namespace vdit {

namespace {

constexpr const char* kPrefix = "checkpoint-";

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%06lld", kPrefix, static_cast<long long>(step));
  return name;
}

std::string write_checkpoint_atomically(const std::string& run_dir, int64_t step,
                                        const std::function<void(const std::string&)>& fill) {
  const fs::path final_dir = fs::path(run_dir) / checkpoint_name(step);
  const fs::path partial = fs::path(run_dir) / ("." + checkpoint_name(step) + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(partial);
  fs::create_directories(partial);
  fill(partial.string());
  for (const auto& entry : fs::directory_iterator(partial)) fsync_path(entry.path());
  fsync_path(partial);
  if (fs::exists(final_dir)) {  // re-written after a resume: swap, then drop the old one
    const fs::path old = fs::path(run_dir) / ("." + checkpoint_name(step) + ".old");
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(partial, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(partial, final_dir);
  }
  fsync_path(run_dir);
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> found;
  if (!fs::is_directory(run_dir)) return found;
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind(kPrefix, 0) == 0) found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());  // zero-padded steps sort by name
  return found;
}

void prune_checkpoints(const std::string& run_dir, int keep_last) {
  if (keep_last <= 0) return;
  std::vector<std::string> all = list_checkpoints(run_dir);
  for (size_t i = 0; i + keep_last < all.size(); ++i) fs::remove_all(all[i]);
}

}  // namespace vdit
