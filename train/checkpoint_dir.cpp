#include "train/checkpoint_dir.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "autograd/check.h"
#include "data/atomic_file.h"

namespace fs = std::filesystem;

namespace vdit {

namespace {

constexpr const char* kPrefix = "checkpoint-";

// Every file and directory below `dir`, then `dir` itself, synced to disk.
void sync_tree(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() || entry.is_directory()) sync_path(entry.path().string());
  sync_path(dir.string());
}

// "RUN_DIR/.NAME.SUFFIX": hidden, so that list_checkpoints never takes it for a checkpoint.
fs::path hidden(const std::string& run_dir, const std::string& name, const std::string& suffix) {
  return fs::path(run_dir) / ("." + name + "." + suffix);
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%06lld", kPrefix, static_cast<long long>(step));
  return name;
}

std::string normalise_checkpoint_path(const std::string& path) {
  VDIT_CHECK(!path.empty(), "no checkpoint given");
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "run/checkpoint-000020/" -> "run/checkpoint-000020"
  if (p.filename() == "." || p.filename() == "..") p = fs::absolute(p).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.string();
}

std::string checkpoint_run_dir(const std::string& checkpoint) {
  const fs::path parent = fs::path(normalise_checkpoint_path(checkpoint)).parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string write_checkpoint_atomically(const std::string& run_dir, int64_t step,
                                        const std::function<void(const std::string&)>& fill) {
  const std::string name = checkpoint_name(step);
  const fs::path final_dir = fs::path(run_dir) / name;
  const fs::path partial = hidden(run_dir, name, "partial-" + std::to_string(::getpid()));
  fs::remove_all(partial);
  fs::create_directories(partial);
  try {
    fill(partial.string());
    sync_tree(partial);
  } catch (...) {
    std::error_code ignored;  // the error being thrown says what went wrong
    fs::remove_all(partial, ignored);
    throw;
  }
  if (fs::exists(final_dir)) {  // re-written after a resume: swap, then drop the old one
    const fs::path old = hidden(run_dir, name, "old");
    fs::remove_all(old);
    durable_rename(final_dir.string(), old.string());
    durable_rename(partial.string(), final_dir.string());
    fs::remove_all(old);
  } else {
    durable_rename(partial.string(), final_dir.string());
  }
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> found;
  if (!fs::is_directory(run_dir)) return found;
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.starts_with(kPrefix)) found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());  // zero-padded steps sort by name
  return found;
}

void prune_checkpoints(const std::string& run_dir, int keep_last) {
  if (keep_last <= 0) return;
  std::vector<std::string> all = list_checkpoints(run_dir);
  for (size_t i = 0; i + keep_last < all.size(); ++i) {
    // Hidden first (atomic), so that a crash while removing never leaves a half checkpoint
    // under a checkpoint's name.
    const fs::path doomed = hidden(run_dir, fs::path(all[i]).filename().string(), "pruned");
    fs::remove_all(doomed);
    durable_rename(all[i], doomed.string());
    fs::remove_all(doomed);
  }
}

}  // namespace vdit
