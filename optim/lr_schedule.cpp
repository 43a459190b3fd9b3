#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "autograd/check.h"

namespace vdit {

LrDecay parse_lr_decay(const std::string& name) {
  if (name == "constant") return LrDecay::Constant;
  if (name == "cosine") return LrDecay::Cosine;
  VDIT_FAIL("unknown learning-rate decay '" << name << "' (expected constant or cosine)");
}

double LrSchedule::at(int64_t step) const {
  VDIT_CHECK(step >= 0, "learning-rate schedule: step " << step << " is negative");
  VDIT_CHECK(base_lr >= 0 && warmup_steps >= 0 && min_lr_ratio >= 0 && min_lr_ratio <= 1,
             "learning-rate schedule: needs base_lr >= 0 (" << base_lr << "), warmup_steps >= 0 ("
                                                            << warmup_steps << ") and min_lr_ratio in [0, 1] ("
                                                            << min_lr_ratio << ")");
  if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (decay == LrDecay::Constant) return base_lr;
  VDIT_CHECK(total_steps > warmup_steps, "learning-rate schedule: cosine decay needs total_steps ("
                                             << total_steps << ") beyond warmup_steps (" << warmup_steps << ")");
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) /
                                            static_cast<double>(total_steps - warmup_steps));
  const double min_lr = min_lr_ratio * base_lr;
  return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace vdit
