#pragma once
// Data-parallel training's one exchange per step: after every rank's backward pass, the
// gradients of the trainable parameters (only those: the frozen model has none) are summed
// across ranks, as one flat buffer per device, before clipping and the optimizer step, so every
// rank takes the same step and holds the same weights.
#include <vector>

#include "optim/optimizer.h"
#include "train/data_parallel.h"

namespace vdit {

class GradientSum {
 public:
  explicit GradientSum(DataParallel& group) : group_(group) {}

  // Sums every parameter's gradient across the ranks. A parameter without a gradient on this
  // rank (one whose share of the batch was empty) counts as zeros; it gets the sum when any
  // rank has a gradient for it, and stays without one (the optimizer skips it, as it would in
  // one process) when none has. Nothing happens in a group of one. Returns the seconds the
  // sums took, waiting for the slowest rank included; on a GPU, from the end of its backward
  // pass to the end of the sums (the device is synchronised at both ends to time them).
  double operator()(const std::vector<TrainableParameter>& params);

 private:
  DataParallel& group_;
  std::vector<float> host_;  // the flat buffer of CPU gradients, kept from step to step
};

}  // namespace vdit
