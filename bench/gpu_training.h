#pragma once
// The training steps of `vditkit-bench gpu` (issue 14) at the Wan2.1-1.3B shapes: retraining
// block 20 (blocks 0-19 frozen without a graph, 21-29 frozen: stored in the graph, or recomputed
// with --recompute-frozen; AdamW) and temperature tuning (a temperature per head of every block),
// through the real Retrainer, beside PyTorch's (bench/torch_gpu.py --training).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vdit::bench {

struct TrainingFigures {
  double retrain_s = 0, retrain_gib = 0, tune_s = 0, tune_gib = 0;  // seconds per step, peak GiB
};

// bench/torch_gpu.py's four figures per grid (tokens per frame, height, width) for `flags`
// ("" for the block/forward/attention/GEMM rows, "--training ..." for the steps), or empty with
// the reason printed under `section`. Run it before this process's allocator holds GPU memory.
std::vector<std::array<double, 4>> torch_gpu_rows(const std::string& flags,
                                                  const std::vector<std::array<int64_t, 3>>& grids,
                                                  const std::string& section);

// PyTorch's training figures per grid (torch_gpu_rows with --training).
std::vector<TrainingFigures> torch_training_figures(const std::vector<std::array<int64_t, 3>>& grids);

// Measures ours per grid and prints them, with PyTorch's when given, as `name: value` lines and a table.
void print_training_figures(const std::vector<std::array<int64_t, 3>>& grids, const std::vector<TrainingFigures>& torch);

}  // namespace vdit::bench
