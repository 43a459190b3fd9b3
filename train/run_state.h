#pragma once
// Everything besides weights and optimizer moments that a resumed run needs to continue
// exactly: the step, every random stream, the data sampler's position, the loss smoother and
// the run's configuration. Stored as the checkpoint's `state` file (Boost.Serialization text
// archive, readable and portable).
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/random.h"

namespace vdit {

struct RunState {
  int64_t step = 0;                 // optimizer steps completed
  Rng::State sigma_rng{};           // noise levels
  Rng::State noise_rng{};           // noise tensors
  Rng::State data_rng{};            // the sampler's shuffles
  int64_t epoch = 0;                // sampler: passes over the data completed
  int64_t cursor = 0;               // sampler: position within this epoch's order
  std::vector<int64_t> order;       // sampler: this epoch's order of batches
  double smoothed_loss = 0.0;       // exponential moving average shown on the progress line
  std::string run_config;           // JSON of the run's options, to check a resume against

  void save(const std::string& path) const;
  static RunState load(const std::string& path);
  bool operator==(const RunState&) const = default;
};

}  // namespace vdit
