#pragma once
// The learning rate at each update: linear warmup, then constant or cosine decay.
#include <cstdint>
#include <string>

namespace vdit {

enum class LrDecay { Constant, Cosine };
LrDecay parse_lr_decay(const std::string& name);  // "constant" | "cosine"

struct LrSchedule {
  double base_lr = 1e-4;
  int64_t warmup_steps = 0;
  LrDecay decay = LrDecay::Cosine;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;

  // Steps count from 0. Step s < warmup_steps uses base_lr * (s + 1) / warmup_steps, so the
  // first update already moves and step warmup_steps - 1 reaches base_lr. After the warmup:
  // base_lr (Constant), or a half cosine from base_lr at step warmup_steps to
  // min_lr_ratio * base_lr at step total_steps, held there afterwards (Cosine).
  double at(int64_t step) const;
};

}  // namespace vdit
