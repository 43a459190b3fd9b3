#pragma once
// What the model, data and command tests share: a scratch directory per test, running the
// PyTorch reference and the vditkit binary, and a relative error between tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "autograd/check.h"
#include "autograd/random.h"
#include "autograd/tensor.h"
#include "data/synthetic_data.h"
#include "layers/init.h"
#include "layers/vdit.h"
#include "layers/vdit_config.h"

namespace vdit::testing {

// A fresh directory for the running test, removed when the object goes.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("vditkit-" + std::string(info->test_suite_name()) + "-" + info->name() + "-" +
             std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `vditkit ARGS` from the build tree.
inline CommandResult run_vditkit(const std::string& args) { return run_command(std::string(VDITKIT_BINARY) + " " + args); }

// The float64 PyTorch reference of tests/reference/wan_reference.py with ARGS.
inline CommandResult run_reference(const std::string& args) {
  return run_command(std::string(VDITKIT_PYTHON) + " " + VDITKIT_SOURCE_DIR + "/tests/reference/wan_reference.py " + args);
}

// max |a - b|, infinite when any difference is NaN.
inline double max_abs_difference(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double diff = 0.0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    const double d = std::fabs(static_cast<double>(x[i]) - y[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
  }
  return diff;
}

inline double max_abs(const Tensor& t) {
  double m = 0.0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}

// max |a - b| / max |b|: the error of `actual` at the scale of `expected`.
inline double relative_error(const Tensor& actual, const Tensor& expected) {
  return max_abs_difference(actual, expected) / std::max(max_abs(expected), 1e-30);
}

// The message of the vdit::Error `f` throws; empty (so every substring check fails) if none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A small Wan configuration for model tests; the tests name these shapes in their expectations.
struct SmallConfig {
  int64_t dim, ffn_dim, num_heads, num_layers;
  int64_t in_dim = 4, text_dim = 6, text_len = 5, freq_dim = 8;
};

inline VDiTConfig small_config(const SmallConfig& s) {
  VDiTConfig c;
  c.dim = s.dim;
  c.ffn_dim = s.ffn_dim;
  c.num_heads = s.num_heads;
  c.num_layers = s.num_layers;
  c.in_dim = c.out_dim = s.in_dim;
  c.text_dim = s.text_dim;
  c.text_len = s.text_len;
  c.freq_dim = s.freq_dim;
  return c;
}

// Wan's initialisation with a random output head instead of its zero one, which would make
// the output constant and leave every block without a gradient.
inline ParameterMap params_with_random_head(const VDiTConfig& config, uint64_t seed, float head_std) {
  ParameterMap p = init_wan_parameters(config, seed);
  Rng rng(seed + 100);
  p["head.head.weight"] = rng.normal_tensor(p["head.head.weight"].shape(), head_std);
  return p;
}

// A Wan model of `config` with Wan's initialisation: what the layer vocabulary and temperature
// functions read (Model) when a test names only a config.
inline VDiT wan_model(const VDiTConfig& config) { return VDiT(config, init_wan_parameters(config, 0)); }

// Synthetic samples for the small models: latents [4, 1, 4, 4] (four tokens), context [4, 8].
inline std::vector<LatentSample> small_synthetic_samples(int64_t count) {
  SyntheticDataSpec spec;
  spec.samples = count;
  spec.channels = 4;
  spec.height = 4;
  spec.width = 4;
  spec.context_len = 4;
  spec.text_dim = 8;
  return make_synthetic_samples(spec);
}

}  // namespace vdit::testing
