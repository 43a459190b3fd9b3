#include "optim/optimizer.h"

#include <cmath>
#include <set>

#include "autograd/check.h"
#include "data/hdf5_file.h"
#include "optim/adamw.h"
#include "optim/sgd.h"

namespace vdit {

bool decays(const TrainableParameter& p) { return p.value.ndim() >= 2; }

Optimizer::Optimizer(std::string kind, std::vector<TrainableParameter> params, std::vector<std::string> moment_names)
    : kind_(std::move(kind)), params_(std::move(params)), moment_names_(std::move(moment_names)) {
  std::set<std::string> seen;
  for (const TrainableParameter& p : params_) {
    // Names become dataset paths "<moment>/<name>" in optimizer.h5.
    VDIT_CHECK(!p.name.empty() && p.name.find('/') == std::string::npos,
               kind_ << ": parameter name '" << p.name << "' must be non-empty and contain no '/'");
    VDIT_CHECK(seen.insert(p.name).second, kind_ << ": parameter '" << p.name << "' given twice");
    VDIT_CHECK(p.value.defined() && p.value.dtype() == DType::F32 && p.value.requires_grad(),
               kind_ << ": parameter '" << p.name << "' must be a float32 tensor that requires a gradient");
  }
  for (size_t k = 0; k < moment_names_.size(); ++k) {
    moments_.emplace_back();
    for (const TrainableParameter& p : params_)
      moments_[k].push_back(Tensor::zeros(p.value.shape(), DType::F32, p.value.device()));
  }
}

void Optimizer::check_learning_rate(double lr) {
  VDIT_CHECK(std::isfinite(lr) && lr >= 0, "optimizer step: learning rate " << lr << " is not a finite non-negative number");
}

void Optimizer::save(const std::string& path) const {
  write_hdf5_atomically(path, [&](Hdf5File& file) {
    file.write_string("kind", kind_);
    file.write_int("steps", steps_);
    for (size_t k = 0; k < moment_names_.size(); ++k)
      for (size_t i = 0; i < params_.size(); ++i) file.write(moment_names_[k] + "/" + params_[i].name, moments_[k][i].to(Device::cpu()));
  });
}

void Optimizer::load(const std::string& path) {
  Hdf5File file(path, Hdf5File::Mode::Read);
  const std::string kind = file.read_string("kind");
  VDIT_CHECK(kind == kind_, path << ": attribute 'kind' is '" << kind << "', expected '" << kind_ << "'");
  const int64_t steps = file.read_int("steps");
  VDIT_CHECK(steps >= 0, path << ": attribute 'steps' is negative (" << steps << ")");

  const std::set<std::string> ours(moment_names_.begin(), moment_names_.end());
  for (const std::string& group : file.groups("/"))
    VDIT_CHECK(ours.count(group), path << ": unexpected group '" << group << "' for a " << kind_ << " optimizer");
  std::set<std::string> names;
  for (const TrainableParameter& p : params_) names.insert(p.name);
  std::vector<std::vector<Tensor>> moments(moment_names_.size());
  for (size_t k = 0; k < moment_names_.size(); ++k) {
    const std::string& group = moment_names_[k];
    for (const TrainableParameter& p : params_) {
      const std::string key = group + "/" + p.name;
      VDIT_CHECK(file.has(key), path << ": missing moment '" << key << "'");
      const Shape shape = file.shape(key);
      VDIT_CHECK(shape == p.value.shape(), path << ": moment '" << key << "' has shape " << to_string(shape)
                                                << ", the parameter has " << to_string(p.value.shape()));
      moments[k].push_back(file.read(key).to(p.value.device()));
    }
    if (!file.has(group)) continue;  // no parameters, no group
    for (const std::string& name : file.datasets(group))
      VDIT_CHECK(names.count(name), path << ": moment '" << group << "/" << name << "' is not a trained parameter");
  }
  moments_ = std::move(moments);
  steps_ = steps;
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, std::vector<TrainableParameter> params,
                                          const AdamWOptions& adamw, const SgdOptions& sgd) {
  if (kind == "adamw") return std::make_unique<AdamW>(std::move(params), adamw);
  if (kind == "sgd") return std::make_unique<Sgd>(std::move(params), sgd);
  VDIT_FAIL("unknown optimizer '" << kind << "' (expected adamw or sgd)");
}

}  // namespace vdit
