#pragma once
// What every optimizer shares: the trainable parameters by name, the per-parameter moments
// (float32, as in PyTorch, on the parameter's device), the update count, and optimizer.h5.
//
// optimizer.h5 holds `kind` ("adamw"/"sgd") and `steps` as root attributes and one dataset per
// moment and parameter: "exp_avg/<name>", "exp_avg_sq/<name>" (AdamW), "momentum/<name>" (SGD
// with momentum). A loaded file must match the optimizer exactly, so that a resumed run
// continues bit for bit.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "autograd/tensor.h"

namespace vdit {

struct TrainableParameter {
  std::string name;  // original Wan key, e.g. "blocks.3.ffn.0.weight"
  Tensor value;      // float32, requires_grad; updated in place (same storage) by step()
};

// Weight decay applies to matrices (ndim >= 2) only: biases, norm weights, modulation rows and
// temperatures are not decayed (the usual choice for transformers).
bool decays(const TrainableParameter& p);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr` from each parameter's current grad() (a parameter with
  // no gradient is skipped). Runs under NoGradScope; writes values in place.
  virtual void step(double lr) = 0;
  int64_t steps() const { return steps_; }  // updates done so far
  const std::vector<TrainableParameter>& parameters() const { return params_; }

  void save(const std::string& path) const;  // atomic: path.partial, then rename
  // Checks the kind, that every parameter has each of its moments with the right shape and
  // that there are no other moments; changes nothing unless all of it holds.
  void load(const std::string& path);

 protected:
  // `moment_names` are this optimizer's moments (the dataset groups of its file); each starts
  // as zeros, which is what PyTorch's lazily created state amounts to.
  Optimizer(std::string kind, std::vector<TrainableParameter> params, std::vector<std::string> moment_names);

  // Moment `k` (index into moment_names) of parameter `i`, on the parameter's device.
  float* moment(size_t k, size_t i) { return static_cast<float*>(moments_[k][i].storage()); }

  // Counts one update of rate `lr`, then calls update(i, value, grad) for every parameter i that
  // has a gradient, with recording off; `value` is the parameter's storage, updated in place.
  // Both pointers are on the parameter's device (an update dispatches on it).
  template <class Update>
  void run_step(double lr, Update update) {
    check_learning_rate(lr);
    NoGradScope no_grad;
    ++steps_;
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor grad = params_[i].value.grad();
      if (grad.defined())
        update(i, static_cast<float*>(params_[i].value.storage()), static_cast<const float*>(grad.storage()));
    }
  }

 private:
  static void check_learning_rate(double lr);

  std::string kind_;
  std::vector<TrainableParameter> params_;
  std::vector<std::string> moment_names_;
  std::vector<std::vector<Tensor>> moments_;  // [moment][parameter]
  int64_t steps_ = 0;
};

// Runs body(j) for every j in [0, n) across threads. The schedule is static and each element
// is computed alone, so results are the same for any thread count.
template <class Body>
void for_each_element(int64_t n, Body body) {
  constexpr int64_t kParallelMin = 1 << 15;  // below this, starting threads costs more than it saves
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t j = 0; j < n; ++j) body(j);
}

struct AdamWOptions;
struct SgdOptions;
// kind: "adamw" or "sgd"; the options of the other kind are ignored.
std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, std::vector<TrainableParameter> params,
                                          const AdamWOptions& adamw, const SgdOptions& sgd);

}  // namespace vdit
