#pragma once
// The training steps of `vditkit-bench gpu` (issue 14) at the Wan2.1-1.3B shapes: retraining
// block 20 (blocks 0-19 frozen without a graph, 21-29 frozen: stored in the graph, or recomputed
// with --recompute-frozen; AdamW) and temperature tuning (a temperature per head of every block),
// through the real Retrainer, beside PyTorch's (bench/torch_gpu.py --training).
#include <array>
#include <cstdint>
#include <vector>

namespace vdit::bench {

struct TrainingFigures {
  double retrain_s = 0, retrain_gib = 0, tune_s = 0, tune_gib = 0;  // seconds per step, peak GiB
};

// PyTorch's figures per grid (tokens per frame, height, width), or empty with the reason printed.
// Run it before this process's allocator holds GPU memory.
std::vector<TrainingFigures> torch_training_figures(const std::vector<std::array<int64_t, 3>>& grids);

// Measures ours per grid and prints them, with PyTorch's when given, as `name: value` lines and a table.
void print_training_figures(const std::vector<std::array<int64_t, 3>>& grids, const std::vector<TrainingFigures>& torch);

}  // namespace vdit::bench
