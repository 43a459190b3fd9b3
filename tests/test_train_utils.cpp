// The training utilities in train/: the flow-matching objective, the --layers parser, the run
// state file, atomic checkpoint directories, and the serialisable random stream.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "layers/vdit.h"
#include "layers/vdit_config.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/checkpoint_dir.h"
#include "train/flow_matching.h"
#include "train/layer_selection.h"
#include "train/run_state.h"

namespace fs = std::filesystem;

namespace vdit {
namespace {

using testing::all_close;
using testing::wan_model;

// A fresh directory for one test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir()
      : path_(fs::temp_directory_path() /
              ("vditkit-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
               "-" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  // Names of every entry, hidden ones included.
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.insert(e.path().filename().string());
    return names;
  }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// --- flow matching ---

TEST(FlowMatching, ShiftSigmaFollowsFormula) {
  EXPECT_DOUBLE_EQ(shift_sigma(0.5, 5.0), 2.5 / 3.0);  // 5 * 0.5 / (1 + 4 * 0.5)
  EXPECT_DOUBLE_EQ(shift_sigma(0.2, 3.0), 0.6 / 1.4);
  EXPECT_DOUBLE_EQ(shift_sigma(0.0, 5.0), 0.0);
  EXPECT_DOUBLE_EQ(shift_sigma(1.0, 5.0), 1.0);
}

TEST(FlowMatching, ShiftOfOneIsIdentity) {
  for (double sigma : {0.0, 0.1, 0.37, 0.9, 1.0}) EXPECT_EQ(shift_sigma(sigma, 1.0), sigma);
}

TEST(FlowMatching, SampleSigmaDrawsThenShifts) {
  FlowMatchingConfig uniform;
  uniform.shift = 3.0;
  Rng a(3), b(3);
  EXPECT_DOUBLE_EQ(sample_sigma(uniform, a), shift_sigma(b.uniform(), 3.0));
  FlowMatchingConfig logit;
  logit.sampling = SigmaSampling::LogitNormal;
  logit.logit_mean = 0.5;
  logit.logit_std = 2.0;
  logit.shift = 1.0;
  EXPECT_DOUBLE_EQ(sample_sigma(logit, a), 1.0 / (1.0 + std::exp(-(0.5 + 2.0 * b.normal()))));
}

TEST(FlowMatching, LossWeights) {
  for (double sigma : {0.1, 0.5, 0.9}) EXPECT_EQ(loss_weight(LossWeighting::None, sigma), 1.0);
  EXPECT_DOUBLE_EQ(loss_weight(LossWeighting::Cosmap, 0.5), 4.0 / M_PI);  // 2 / (pi (1 - 1 + 0.5))
  EXPECT_DOUBLE_EQ(loss_weight(LossWeighting::Cosmap, 0.0), 2.0 / M_PI);
  EXPECT_DOUBLE_EQ(loss_weight(LossWeighting::SigmaSqrt, 0.5), 4.0);
  EXPECT_DOUBLE_EQ(loss_weight(LossWeighting::SigmaSqrt, 0.0), 1e4);  // bounded near 0
}

TEST(FlowMatching, NoisyBatchInterpolatesTowardNoise) {
  Rng data(1);
  const Tensor x0 = data.normal_tensor({2, 3, 2, 2, 3});
  FlowMatchingConfig config;
  config.weighting = LossWeighting::Cosmap;
  Rng sigma_rng(10), noise_rng(20);
  Rng sigma_copy = sigma_rng, noise_copy = noise_rng;
  const NoisyBatch batch = make_noisy_batch(x0, config, sigma_rng, noise_rng);

  const std::vector<double> sigmas = {sample_sigma(config, sigma_copy), sample_sigma(config, sigma_copy)};
  const std::vector<float> noise = noise_copy.normal_tensor(x0.shape()).to_vector(), x = x0.to_vector();
  EXPECT_EQ(batch.sigmas, sigmas);
  // Each stream advanced by exactly its own draws.
  EXPECT_EQ(sigma_rng.state(), sigma_copy.state());
  EXPECT_EQ(noise_rng.state(), noise_copy.state());

  const int64_t per_sample = x0.numel() / 2;
  std::vector<double> x_sigma, target;
  for (int64_t i = 0; i < x0.numel(); ++i) {
    const double s = sigmas[i / per_sample];
    x_sigma.push_back((1.0 - s) * x[i] + s * noise[i]);
    target.push_back(static_cast<double>(noise[i]) - x[i]);
  }
  EXPECT_TRUE(all_close(batch.x_sigma.to_vector(), x_sigma, 1e-6));
  EXPECT_TRUE(all_close(batch.target.to_vector(), target, 1e-6));
  EXPECT_TRUE(all_close(batch.timesteps.to_vector(), {1000 * sigmas[0], 1000 * sigmas[1]}, 1e-6));
  EXPECT_TRUE(all_close(batch.weights.to_vector(),
                        {loss_weight(LossWeighting::Cosmap, sigmas[0]), loss_weight(LossWeighting::Cosmap, sigmas[1])},
                        1e-6));
}

TEST(FlowMatching, NoisyBatchAtChosenSigmasEndpoints) {
  Rng data(2), noise_rng(3);
  const Tensor x0 = data.normal_tensor({2, 1, 1, 2, 2});
  Rng noise_copy = noise_rng;
  const NoisyBatch batch = make_noisy_batch_at(x0, {0.0, 1.0}, LossWeighting::None, noise_rng);
  const std::vector<float> noise = noise_copy.normal_tensor(x0.shape()).to_vector(), x = x0.to_vector();
  const std::vector<float> x_sigma = batch.x_sigma.to_vector();
  EXPECT_EQ(std::vector<float>(x_sigma.begin(), x_sigma.begin() + 4), std::vector<float>(x.begin(), x.begin() + 4));
  EXPECT_EQ(std::vector<float>(x_sigma.begin() + 4, x_sigma.end()), std::vector<float>(noise.begin() + 4, noise.end()));
  EXPECT_THROW(make_noisy_batch_at(x0, {0.5}, LossWeighting::None, noise_rng), Error);
}

TEST(FlowMatching, LossWeightsEachSamplesMeanSquaredError) {
  Rng rng(4), noise_rng(5);
  const Tensor x0 = rng.normal_tensor({2, 2, 1, 2, 2});
  const Tensor velocity = rng.normal_tensor(x0.shape());
  const NoisyBatch batch = make_noisy_batch_at(x0, {0.5, 0.25}, LossWeighting::SigmaSqrt, noise_rng);
  const std::vector<float> v = velocity.to_vector(), t = batch.target.to_vector();
  double per_sample[2] = {0.0, 0.0};
  for (size_t i = 0; i < v.size(); ++i) per_sample[i / 8] += std::pow(v[i] - t[i], 2) / 8;
  EXPECT_NEAR(flow_matching_loss(velocity, batch).item(), (4.0 * per_sample[0] + 16.0 * per_sample[1]) / 2, 1e-5);
  const NoisyBatch plain = make_noisy_batch_at(x0, {0.5, 0.25}, LossWeighting::None, noise_rng);
  EXPECT_FLOAT_EQ(flow_matching_loss(velocity, plain).item(), mse_loss(velocity, plain.target).item());
}

TEST(FlowMatching, ParsesOptionNames) {
  for (SigmaSampling s : {SigmaSampling::Uniform, SigmaSampling::LogitNormal})
    EXPECT_EQ(parse_sigma_sampling(to_string(s)), s);
  for (LossWeighting w : {LossWeighting::None, LossWeighting::Cosmap, LossWeighting::SigmaSqrt})
    EXPECT_EQ(parse_loss_weighting(to_string(w)), w);
  EXPECT_THROW(parse_sigma_sampling("normal"), Error);
  EXPECT_THROW(parse_loss_weighting("sigma_sqrt"), Error);
}

// --- layer selection ---

// Wan's parameter names do not depend on the widths: tiny ones keep the model that the layer
// vocabulary reads (testing::wan_model) small.
VDiTConfig four_block_config() {
  VDiTConfig config = VDiTConfig::tiny();
  config.num_layers = 4;
  return config;
}

std::set<std::string> names_with_prefix(const VDiTConfig& config, const std::string& prefix) {
  std::set<std::string> names;
  for (const ParamSpec& s : wan_parameter_specs(config))
    if (s.name.rfind(prefix, 0) == 0) names.insert(s.name);
  return names;
}

TEST(LayerSelection, BlocksAndRanges) {
  const VDiTConfig c = four_block_config();
  EXPECT_EQ(parse_layer_spec("3,1", wan_model(c)).names, block_parameter_names(wan_model(c), {1, 3}));
  EXPECT_EQ(parse_layer_spec("1-2", wan_model(c)).names, block_parameter_names(wan_model(c), {1, 2}));
  EXPECT_EQ(parse_layer_spec(" 0 , 2-3 ", wan_model(c)).names, block_parameter_names(wan_model(c), {0, 2, 3}));
  EXPECT_EQ(parse_layer_spec("1", wan_model(c)).names, names_with_prefix(c, "blocks.1."));
  EXPECT_EQ(parse_layer_spec("0", wan_model(c)).auto_blocks, 0);
}

TEST(LayerSelection, SubModules) {
  const VDiTConfig c = four_block_config();
  EXPECT_EQ(parse_layer_spec("2.ffn", wan_model(c)).names, names_with_prefix(c, "blocks.2.ffn."));
  EXPECT_EQ(parse_layer_spec("3.self_attn", wan_model(c)).names, names_with_prefix(c, "blocks.3.self_attn."));
  EXPECT_EQ(parse_layer_spec("3.cross_attn", wan_model(c)).names, names_with_prefix(c, "blocks.3.cross_attn."));
  EXPECT_EQ(parse_layer_spec("1.modulation", wan_model(c)).names, std::set<std::string>{"blocks.1.modulation"});
  EXPECT_EQ(parse_layer_spec("0.norms", wan_model(c)).names,
            (std::set<std::string>{"blocks.0.norm3.weight", "blocks.0.norm3.bias",
                                   "blocks.0.self_attn.norm_q.weight", "blocks.0.self_attn.norm_k.weight",
                                   "blocks.0.cross_attn.norm_q.weight", "blocks.0.cross_attn.norm_k.weight"}));
}

TEST(LayerSelection, HeadEmbeddingsAllAndAuto) {
  const VDiTConfig c = four_block_config();
  EXPECT_EQ(parse_layer_spec("head", wan_model(c)).names, names_with_prefix(c, "head."));
  std::set<std::string> embeddings;
  for (const char* prefix : {"patch_embedding.", "text_embedding.", "time_embedding.", "time_projection."})
    embeddings.merge(names_with_prefix(c, prefix));
  EXPECT_EQ(parse_layer_spec("embeddings", wan_model(c)).names, embeddings);
  EXPECT_EQ(parse_layer_spec("all", wan_model(c)).names.size(), wan_parameter_specs(c).size());
  const LayerSelection automatic = parse_layer_spec("auto:3,head", wan_model(c));
  EXPECT_EQ(automatic.auto_blocks, 3);
  EXPECT_EQ(automatic.names, names_with_prefix(c, "head."));
}

TEST(LayerSelection, MalformedSpecsNameTheOffendingItem) {
  const VDiTConfig c = four_block_config();
  const std::pair<std::string, std::string> cases[] = {
      // spec, the text the error must quote
      {"", ""},           {"1,,2", "1,,2"},       {"2,", "2,"},
      {"x", "x"},         {"4", "4"},             {"99999999999", "99999999999"},
      {"3-1", "3-1"},     {"1-9", "1-9"},         {"-1", "-1"},
      {"1-", "1-"},       {"1.foo", "1.foo"},     {"9.ffn", "9.ffn"},
      {"auto:0", "auto:0"}, {"auto:5", "auto:5"}, {"auto:", "auto:"},
      {"auto:x", "auto:x"}, {"auto:99999999999", "auto:99999999999"}, {"0,head,bogus", "bogus"},
  };
  for (const auto& [spec, quoted] : cases) {
    try {
      parse_layer_spec(spec, wan_model(c));
      ADD_FAILURE() << "'" << spec << "' was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + quoted + "'"), std::string::npos)
          << "'" << spec << "': " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "'" << spec << "' threw a non-vdit error: " << e.what();
    }
  }
}

TEST(LayerSelection, FirstSelectedBlock) {
  const VDiTConfig c = four_block_config();
  EXPECT_EQ(first_selected_block(parse_layer_spec("3,1.ffn", wan_model(c)).names, wan_model(c)), 1);
  EXPECT_EQ(first_selected_block(parse_layer_spec("head", wan_model(c)).names, wan_model(c)), -1);
  EXPECT_EQ(first_selected_block({}, wan_model(c)), 4);
}

// --- run state and random streams ---

TEST(Rng, RestoredStateRepeatsTheStream) {
  Rng rng(42);
  for (int i = 0; i < 5; ++i) rng.next();
  const Rng::State saved = rng.state();
  auto draws = [](Rng& r) {
    std::vector<double> d;
    for (int i = 0; i < 4; ++i) d.insert(d.end(), {static_cast<double>(r.next()), r.uniform(), r.normal(),
                                                    static_cast<double>(r.below(7))});
    return d;
  };
  const std::vector<double> first = draws(rng);
  Rng restored(7);
  restored.set_state(saved);
  EXPECT_EQ(draws(restored), first);
  EXPECT_NE(draws(rng), first);
}

// A tensor of normals (transformed in parallel) is normal() drawn element by element, in order,
// over more than one block of its draws, and leaves the stream where those draws would.
TEST(Rng, NormalTensorIsNormalDrawnInOrder) {
  Rng one_by_one(9), whole(9);
  const Tensor t = whole.normal_tensor({3, 50001}, 0.5f);
  for (int64_t i = 0; i < t.numel(); ++i)
    ASSERT_EQ(t.data()[i], static_cast<float>(one_by_one.normal()) * 0.5f) << "element " << i;
  EXPECT_EQ(whole.state(), one_by_one.state());
}

TEST(Rng, SeedsGiveDistinctStreams) {
  Rng a(1), b(2), a_again(1);
  EXPECT_NE(a.next(), b.next());
  a_again.next();
  EXPECT_EQ(a.state(), a_again.state());
  for (int i = 0; i < 1000; ++i) {
    const double u = a.uniform();
    ASSERT_TRUE(u >= 0.0 && u < 1.0) << u;
  }
}

RunState sample_run_state() {
  RunState s;
  s.step = 1234;
  Rng a(1), b(2), c(3);
  s.sigma_rng = a.state();
  s.noise_rng = b.state();
  s.data_rng = c.state();
  s.epoch = 3;
  s.cursor = 17;
  s.order = {5, 2, 9, 0, 1ll << 40};
  s.smoothed_loss = 1.0 / 3.0;
  s.run_config = "{\"lr\": 1e-4,\n \"name\": \"two words\"}";
  return s;
}

TEST(RunState, SaveLoadRoundTripsEveryField) {
  ScratchDir dir;
  const RunState state = sample_run_state();
  state.save(dir / "state");
  const RunState loaded = RunState::load(dir / "state");
  EXPECT_EQ(loaded.step, state.step);
  EXPECT_EQ(loaded.sigma_rng, state.sigma_rng);
  EXPECT_EQ(loaded.noise_rng, state.noise_rng);
  EXPECT_EQ(loaded.data_rng, state.data_rng);
  EXPECT_EQ(loaded.epoch, state.epoch);
  EXPECT_EQ(loaded.cursor, state.cursor);
  EXPECT_EQ(loaded.order, state.order);
  EXPECT_EQ(loaded.smoothed_loss, state.smoothed_loss);  // exactly: text keeps 17 digits
  EXPECT_EQ(loaded.run_config, state.run_config);
  EXPECT_TRUE(loaded == state);
}

TEST(RunState, RestoredStreamContinuesWhereItStopped) {
  ScratchDir dir;
  Rng noise(77);
  noise.normal_tensor({10});
  RunState state;
  state.noise_rng = noise.state();
  state.save(dir / "state");
  Rng resumed;
  resumed.set_state(RunState::load(dir / "state").noise_rng);
  EXPECT_EQ(resumed.normal_tensor({6}).to_vector(), noise.normal_tensor({6}).to_vector());
}

TEST(RunState, MissingOrCorruptFileIsAnError) {
  ScratchDir dir;
  EXPECT_THROW(RunState::load(dir / "absent"), Error);
  write_file(dir / "corrupt", "not an archive");
  EXPECT_THROW(RunState::load(dir / "corrupt"), Error);
}

// --- checkpoint directories ---

TEST(CheckpointDir, NamesAreZeroPadded) {
  EXPECT_EQ(checkpoint_name(120), "checkpoint-000120");
  EXPECT_EQ(checkpoint_name(1234567), "checkpoint-1234567");
}

TEST(CheckpointDir, PathsAreNormalisedSoThatTheParentIsTheRunDirectory) {
  EXPECT_EQ(normalise_checkpoint_path("run/checkpoint-000020/"), "run/checkpoint-000020");
  EXPECT_EQ(normalise_checkpoint_path("run//./checkpoint-000020//"), "run/checkpoint-000020");
  EXPECT_EQ(checkpoint_run_dir("run/checkpoint-000020/"), "run");
  EXPECT_EQ(checkpoint_run_dir("/abs/run/checkpoint-000020"), "/abs/run");
  EXPECT_EQ(checkpoint_run_dir("checkpoint-000020/"), ".");
  EXPECT_EQ(checkpoint_run_dir("."), fs::current_path().parent_path().string());
}

TEST(CheckpointDir, AtomicWriteLeavesOnlyTheCompleteDirectory) {
  ScratchDir run;
  const std::string final_path = run / "checkpoint-000005";
  const std::string written = write_checkpoint_atomically(run.str(), 5, [&](const std::string& tmp) {
    EXPECT_FALSE(fs::exists(final_path)) << "visible before it is complete";
    EXPECT_EQ(fs::path(tmp).parent_path(), fs::path(run.str()));
    write_file(tmp + "/weights", "w");
  });
  EXPECT_EQ(written, final_path);
  EXPECT_EQ(read_file(final_path + "/weights"), "w");
  EXPECT_EQ(run.entries(), std::set<std::string>{"checkpoint-000005"});
}

TEST(CheckpointDir, RewriteReplacesTheOldContents) {
  ScratchDir run;
  write_checkpoint_atomically(run.str(), 5, [](const std::string& tmp) { write_file(tmp + "/a", "old"); });
  write_checkpoint_atomically(run.str(), 5, [](const std::string& tmp) { write_file(tmp + "/b", "new"); });
  EXPECT_FALSE(fs::exists(run / "checkpoint-000005/a"));
  EXPECT_EQ(read_file(run / "checkpoint-000005/b"), "new");
  EXPECT_EQ(run.entries(), std::set<std::string>{"checkpoint-000005"});
}

TEST(CheckpointDir, FailedFillLeavesNoCheckpoint) {
  ScratchDir run;
  EXPECT_THROW(write_checkpoint_atomically(run.str(), 8, [](const std::string&) { VDIT_FAIL("disk full"); }),
               Error);
  EXPECT_FALSE(fs::exists(run / "checkpoint-000008"));
  EXPECT_TRUE(list_checkpoints(run.str()).empty());
  EXPECT_TRUE(run.entries().empty()) << "the temporary directory is removed";
}

TEST(CheckpointDir, ListIsOldestFirstAndPruneKeepsTheNewest) {
  ScratchDir run;
  for (int64_t step : {100, 3, 12, 7}) write_checkpoint_atomically(run.str(), step, [](const std::string&) {});
  fs::create_directories(run / ".checkpoint-000200.partial-1");  // a crashed write
  fs::create_directories(run / "logs");
  write_file(run / "checkpoint-notes", "a file, not a checkpoint");
  const auto path = [&](int64_t step) { return run / checkpoint_name(step); };
  EXPECT_EQ(list_checkpoints(run.str()), (std::vector<std::string>{path(3), path(7), path(12), path(100)}));
  prune_checkpoints(run.str(), 0);
  EXPECT_EQ(list_checkpoints(run.str()).size(), 4u);
  prune_checkpoints(run.str(), 2);
  EXPECT_EQ(list_checkpoints(run.str()), (std::vector<std::string>{path(12), path(100)}));
  EXPECT_TRUE(fs::exists(run / "logs"));
  EXPECT_TRUE(list_checkpoints(run / "absent").empty());
}

}  // namespace
}  // namespace vdit
