#pragma once
// Checkpoint directories that are complete or absent, never half written: files go into a
// hidden temporary directory, every file and the directory are fsynced (checked), and the
// directory is renamed into place and its parent fsynced (data/atomic_file.h). A crash leaves
// at worst a hidden `.partial`, `.old` or `.pruned` directory, which nothing reads.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vdit {

// "checkpoint-000120" for step 120.
std::string checkpoint_name(int64_t step);

// A checkpoint path as given ("run/checkpoint-000020/", as shell completion writes it, or
// "run/./checkpoint-000020") without trailing separators or dot steps, so that its parent is
// the run directory.
std::string normalise_checkpoint_path(const std::string& path);
// The run directory holding a checkpoint ("." for a bare name).
std::string checkpoint_run_dir(const std::string& checkpoint);

// Creates RUN_DIR/checkpoint-<step> by calling fill(temporary_dir) and renaming; returns its
// path. If fill or a sync fails, the temporary directory is removed and the error rethrown.
std::string write_checkpoint_atomically(const std::string& run_dir, int64_t step,
                                        const std::function<void(const std::string&)>& fill);

// Complete checkpoints of a run, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// Removes all but the newest `keep_last` (keep_last <= 0 keeps everything); call it only once
// the newest is complete and verified.
void prune_checkpoints(const std::string& run_dir, int keep_last);

}  // namespace vdit
