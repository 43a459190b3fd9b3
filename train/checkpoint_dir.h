#pragma once
// Checkpoint directories that are complete or absent, never half written: files go into a
// hidden temporary directory, are flushed to disk, and the directory is renamed into place
// (rename is atomic). A crash leaves at worst a `.partial` directory, which nothing reads.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vdit {

// "checkpoint-000120" for step 120.
std::string checkpoint_name(int64_t step);

// Creates RUN_DIR/checkpoint-<step> by calling fill(temporary_dir) and renaming; returns its path.
std::string write_checkpoint_atomically(const std::string& run_dir, int64_t step,
                                        const std::function<void(const std::string&)>& fill);

// Complete checkpoints of a run, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// Removes all but the newest `keep_last` (keep_last <= 0 keeps everything).
void prune_checkpoints(const std::string& run_dir, int keep_last);

}  // namespace vdit
