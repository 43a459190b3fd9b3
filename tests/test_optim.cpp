// The optimizers of optim/: AdamW and SGD against torch.optim on the same values and
// gradients, the learning-rate schedule, the global gradient norm and clipping, and
// optimizer.h5 (exact resume, load errors that name the file and the key).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/check.h"
#include "autograd/random.h"
#include "data/hdf5_file.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::bit_pattern;
using testing::relative_error;
using testing::ScratchDir;

// A matrix (decayed), a bias (not decayed) and a matrix large enough for the threaded loops.
std::vector<TrainableParameter> make_parameters(const std::vector<std::pair<std::string, Shape>>& layout = {
                                                    {"blocks.0.ffn.0.weight", {33, 47}},
                                                    {"blocks.0.ffn.0.bias", {33}},
                                                    {"blocks.0.ffn.2.weight", {180, 200}}}) {
  Rng rng(7);
  std::vector<TrainableParameter> params;
  for (const auto& [name, shape] : layout) params.push_back({name, rng.normal_tensor(shape, 0.5f).set_requires_grad(true)});
  return params;
}

// The gradient parameter `index` receives at update `step`, the same for vditkit and torch, of a scale that
// changes from step to step so that the moments see a range of magnitudes.
Tensor gradient_at(size_t index, int step, const Shape& shape) {
  Rng rng(1000 * static_cast<uint64_t>(step) + index);
  return rng.normal_tensor(shape, std::ldexp(1.0f, step % 3 - 1));
}

// Each update has its own rate, so that a rate applied at the wrong update shows.
double learning_rate(int step) { return 1e-2 / (1 + step); }

void set_gradient(const TrainableParameter& p, const Tensor& grad) {
  std::copy_n(grad.data(), grad.numel(), p.value.grad_ref()->buffer());
}

// Expects `f` to throw a vdit::Error whose message contains each of `parts`.
void expect_error_naming(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// Updates `first` .. `first + count - 1` of the fixed gradient and rate sequences.
void run_updates(Optimizer& optimizer, int first, int count) {
  for (int step = first; step < first + count; ++step) {
    const auto& params = optimizer.parameters();
    for (size_t i = 0; i < params.size(); ++i) set_gradient(params[i], gradient_at(i, step, params[i].value.shape()));
    optimizer.step(learning_rate(step));
  }
}

// torch.optim on the initial values and gradients of `source`; vditkit decays matrices only,
// so they form their own parameter group.
constexpr const char* kTorchOptimizer = R"(
import sys, h5py, torch
source, result, kind = sys.argv[1:4]
with h5py.File(source, "r") as f:
    a = f.attrs
    names = list(f["init"].keys())
    params = {n: torch.tensor(f["init"][n][()], requires_grad=True) for n in names}
    groups = [{"params": [params[n] for n in names if params[n].dim() >= 2], "weight_decay": float(a["weight_decay"])},
              {"params": [params[n] for n in names if params[n].dim() < 2], "weight_decay": 0.0}]
    if kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=1.0, betas=(float(a["beta1"]), float(a["beta2"])), eps=float(a["eps"]))
    else:
        opt = torch.optim.SGD(groups, lr=1.0, momentum=float(a["momentum"]), nesterov=bool(a["nesterov"]))
    for s in range(int(a["steps"])):
        for group in opt.param_groups:
            group["lr"] = float(a["lr%d" % s])
        for n in names:
            params[n].grad = torch.tensor(f["grad/%d/%s" % (s, n)][()])
        opt.step()
with h5py.File(result, "w") as out:
    for n in names:
        out[n] = params[n].detach().numpy()
)";

// Runs `steps` updates of `optimizer` and of torch's `kind` (configured by `write_options`)
// from the same start, and compares the final values.
void expect_matches_torch(const std::string& kind, Optimizer& optimizer, const std::function<void(Hdf5File&)>& write_options) {
  constexpr int kSteps = 5;
  ScratchDir dir;
  {
    Hdf5File source(dir / "source.h5", Hdf5File::Mode::Create);
    write_options(source);
    source.write_int("steps", kSteps);
    const auto& params = optimizer.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      source.write("init/" + params[i].name, params[i].value);
      for (int step = 0; step < kSteps; ++step)
        source.write("grad/" + std::to_string(step) + "/" + params[i].name, gradient_at(i, step, params[i].value.shape()));
    }
    for (int step = 0; step < kSteps; ++step) source.write_double("lr" + std::to_string(step), learning_rate(step));
  }
  std::ofstream(dir / "torch_optimizer.py") << kTorchOptimizer;
  const auto run = testing::run_command(std::string(VDITKIT_PYTHON) + " " + (dir / "torch_optimizer.py") + " " +
                                        (dir / "source.h5") + " " + (dir / "result.h5") + " " + kind);
  ASSERT_EQ(run.exit_code, 0) << run.output;

  run_updates(optimizer, 0, kSteps);
  Hdf5File result(dir / "result.h5", Hdf5File::Mode::Read);
  for (const TrainableParameter& p : optimizer.parameters())
    EXPECT_LE(relative_error(p.value, result.read(p.name)), 1e-6) << p.name;
}

void expect_adamw_matches_torch(const AdamWOptions& options) {
  AdamW adamw(make_parameters(), options);
  expect_matches_torch("adamw", adamw, [&](Hdf5File& f) {
    f.write_double("beta1", options.beta1);
    f.write_double("beta2", options.beta2);
    f.write_double("eps", options.eps);
    f.write_double("weight_decay", options.weight_decay);
  });
}

void expect_sgd_matches_torch(const SgdOptions& options) {
  Sgd sgd(make_parameters(), options);
  expect_matches_torch("sgd", sgd, [&](Hdf5File& f) {
    f.write_double("momentum", options.momentum);
    f.write_double("weight_decay", options.weight_decay);
    f.write_int("nesterov", options.nesterov);
  });
}

TEST(OptimAdamW, MatchesTorchWithWeightDecay) { expect_adamw_matches_torch({.weight_decay = 0.1}); }

TEST(OptimAdamW, MatchesTorchWithoutWeightDecay) {
  expect_adamw_matches_torch({.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.0});
}

TEST(OptimSgd, MatchesTorchWithMomentum) { expect_sgd_matches_torch({.momentum = 0.9}); }

TEST(OptimSgd, MatchesTorchWithNesterovAndWeightDecay) {
  expect_sgd_matches_torch({.momentum = 0.8, .weight_decay = 0.1, .nesterov = true});
}

TEST(OptimSgd, MatchesTorchWithoutMomentum) { expect_sgd_matches_torch({.momentum = 0.0, .weight_decay = 0.1}); }

TEST(OptimAdamW, SkipsParametersWithoutGradient) {
  AdamW adamw(make_parameters());
  const auto& params = adamw.parameters();
  const auto before = bit_pattern(params[1].value);
  set_gradient(params[0], gradient_at(0, 0, params[0].value.shape()));
  const auto first_before = bit_pattern(params[0].value);
  adamw.step(1e-2);
  EXPECT_EQ(bit_pattern(params[1].value), before);
  EXPECT_NE(bit_pattern(params[0].value), first_before);
  EXPECT_EQ(adamw.steps(), 1);
}

TEST(OptimOptimizer, MakeOptimizerNamesTheKinds) {
  EXPECT_NE(dynamic_cast<AdamW*>(make_optimizer("adamw", make_parameters(), {}, {}).get()), nullptr);
  EXPECT_NE(dynamic_cast<Sgd*>(make_optimizer("sgd", make_parameters(), {}, {}).get()), nullptr);
  expect_error_naming([] { make_optimizer("lion", make_parameters(), {}, {}); }, {"'lion' (expected adamw or sgd)"});
}

// Values after 3 updates, as a resumed run reads them back from its model checkpoint.
std::vector<TrainableParameter> copy_values(const std::vector<TrainableParameter>& params) {
  std::vector<TrainableParameter> copy;
  for (const TrainableParameter& p : params) copy.push_back({p.name, p.value.clone().set_requires_grad(true)});
  return copy;
}

TEST(OptimOptimizer, ResumeFromSaveIsBitIdentical) {
  for (const std::string kind : {"adamw", "sgd"}) {
    SCOPED_TRACE(kind);
    ScratchDir dir;
    const SgdOptions sgd{.momentum = 0.9, .weight_decay = 0.1, .nesterov = true};
    const auto uninterrupted = make_optimizer(kind, make_parameters(), {}, sgd);
    run_updates(*uninterrupted, 0, 3);
    uninterrupted->save(dir / "optimizer.h5");
    const auto resumed = make_optimizer(kind, copy_values(uninterrupted->parameters()), {}, sgd);
    resumed->load(dir / "optimizer.h5");
    EXPECT_EQ(resumed->steps(), 3);

    run_updates(*uninterrupted, 3, 3);
    run_updates(*resumed, 3, 3);
    for (size_t i = 0; i < uninterrupted->parameters().size(); ++i)
      EXPECT_EQ(bit_pattern(resumed->parameters()[i].value), bit_pattern(uninterrupted->parameters()[i].value))
          << uninterrupted->parameters()[i].name;
  }
}

// Saves `saved` after one update, loads it into `loader` and expects an error naming the
// file and `key`, with `loader` left as it was.
void expect_load_error(Optimizer& saved, Optimizer& loader, const std::string& key) {
  ScratchDir dir;
  run_updates(saved, 0, 1);
  saved.save(dir / "optimizer.h5");
  expect_error_naming([&] { loader.load(dir / "optimizer.h5"); }, {dir / "optimizer.h5", key});
  EXPECT_EQ(loader.steps(), 0);
}

TEST(OptimOptimizer, LoadNamesMissingMoment) {
  AdamW saved(make_parameters({{"a", {4, 3}}}));
  AdamW loader(make_parameters({{"a", {4, 3}}, {"b", {3}}}));
  expect_load_error(saved, loader, "exp_avg/b");
}

TEST(OptimOptimizer, LoadNamesMomentOfWrongShape) {
  Sgd saved(make_parameters({{"a", {4, 3}}}));
  Sgd loader(make_parameters({{"a", {3, 4}}}));
  expect_load_error(saved, loader, "momentum/a");
}

TEST(OptimOptimizer, LoadNamesExtraMoment) {
  AdamW saved(make_parameters({{"a", {4, 3}}, {"b", {3}}}));
  AdamW loader(make_parameters({{"a", {4, 3}}}));
  expect_load_error(saved, loader, "exp_avg/b");
}

TEST(OptimOptimizer, LoadNamesWrongKind) {
  Sgd saved(make_parameters({{"a", {4, 3}}}));
  AdamW loader(make_parameters({{"a", {4, 3}}}));
  expect_load_error(saved, loader, "'kind' is 'sgd', expected 'adamw'");
}

TEST(OptimOptimizer, LoadRejectsMomentumForSgdWithoutMomentum) {
  Sgd saved(make_parameters({{"a", {4, 3}}}), {.momentum = 0.9});
  Sgd loader(make_parameters({{"a", {4, 3}}}), {.momentum = 0.0});
  expect_load_error(saved, loader, "'momentum'");
}

TEST(OptimLrSchedule, WarmsUpLinearlyFromTheFirstStep) {
  const LrSchedule s{.base_lr = 1e-3, .warmup_steps = 4, .decay = LrDecay::Cosine, .total_steps = 10};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.at(2), 0.75e-3);
  EXPECT_DOUBLE_EQ(s.at(3), 1e-3);
}

TEST(OptimLrSchedule, CosineRunsFromBaseToMinimumAndHolds) {
  const LrSchedule s{.base_lr = 1e-3, .warmup_steps = 4, .decay = LrDecay::Cosine, .total_steps = 10, .min_lr_ratio = 0.1};
  EXPECT_DOUBLE_EQ(s.at(4), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(7), 0.55e-3);  // halfway: the mean of base and minimum
  EXPECT_DOUBLE_EQ(s.at(10), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(25), 1e-4);
  EXPECT_DOUBLE_EQ((LrSchedule{.base_lr = 1e-3, .total_steps = 10}.at(10)), 0.0);
}

TEST(OptimLrSchedule, ConstantHoldsBaseAfterWarmup) {
  const LrSchedule s{.base_lr = 2e-4, .warmup_steps = 2, .decay = LrDecay::Constant, .total_steps = 10};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(1), 2e-4);
  EXPECT_DOUBLE_EQ(s.at(1000), 2e-4);
}

TEST(OptimLrSchedule, ParsesDecayNames) {
  EXPECT_EQ(parse_lr_decay("constant"), LrDecay::Constant);
  EXPECT_EQ(parse_lr_decay("cosine"), LrDecay::Cosine);
  expect_error_naming([] { parse_lr_decay("linear"); }, {"'linear'"});
}

TEST(OptimLrSchedule, CosineNeedsStepsBeyondWarmup) {
  EXPECT_THROW((LrSchedule{.warmup_steps = 10, .total_steps = 10}.at(10)), Error);
}

// Parameters with gradients 0 .. n-1 of update 0, the last one left without a gradient.
std::vector<TrainableParameter> with_gradients() {
  auto params = make_parameters();
  for (size_t i = 0; i + 1 < params.size(); ++i) set_gradient(params[i], gradient_at(i, 0, params[i].value.shape()));
  return params;
}

TEST(OptimGradClip, NormIsTheSquareRootOfAllSquares) {
  const auto params = with_gradients();
  double sum = 0.0;
  for (const TrainableParameter& p : params)
    if (p.value.grad().defined())
      for (float g : p.value.grad().to_vector()) sum += static_cast<double>(g) * g;
  EXPECT_NEAR(global_grad_norm(params), std::sqrt(sum), 1e-12 * std::sqrt(sum));
}

TEST(OptimGradClip, NormIsTheSameForAnyThreadCount) {
  const auto params = make_parameters();
  for (size_t i = 0; i < params.size(); ++i) set_gradient(params[i], gradient_at(i, 0, params[i].value.shape()));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = global_grad_norm(params);
  omp_set_num_threads(3);
  const double three = global_grad_norm(params);
  omp_set_num_threads(threads);
  EXPECT_EQ(one, three);
}

TEST(OptimGradClip, NormPropagatesInfAndNaN) {
  const auto params = with_gradients();
  params[0].value.grad().data()[5] = INFINITY;
  EXPECT_EQ(global_grad_norm(params), INFINITY);
  params[0].value.grad().data()[5] = NAN;
  EXPECT_TRUE(std::isnan(global_grad_norm(params)));
}

TEST(OptimGradClip, ScalesEveryGradientWhenOverTheLimit) {
  const auto params = with_gradients();
  const double norm = global_grad_norm(params);
  std::vector<std::vector<float>> before;
  for (size_t i = 0; i + 1 < params.size(); ++i) before.push_back(params[i].value.grad().to_vector());

  EXPECT_EQ(clip_grad_norm(params, norm / 4), norm);
  const auto scale = static_cast<float>((norm / 4) / norm);
  for (size_t i = 0; i < before.size(); ++i) {
    const std::vector<float> after = params[i].value.grad().to_vector();
    for (size_t j = 0; j < after.size(); ++j) ASSERT_EQ(after[j], before[i][j] * scale) << params[i].name << " " << j;
  }
  EXPECT_NEAR(global_grad_norm(params), norm / 4, 1e-6 * norm);
  EXPECT_FALSE(params.back().value.grad().defined());
}

TEST(OptimGradClip, LeavesGradientsAloneWhenUnderTheLimitOrOff) {
  const auto params = with_gradients();
  const double norm = global_grad_norm(params);
  const auto before = bit_pattern(params[0].value.grad());
  EXPECT_EQ(clip_grad_norm(params, norm * 2), norm);
  EXPECT_EQ(clip_grad_norm(params, 0.0), norm);
  EXPECT_EQ(bit_pattern(params[0].value.grad()), before);
}

}  // namespace
}  // namespace vdit
