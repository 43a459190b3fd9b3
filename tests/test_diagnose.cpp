// Diagnosing whole models: a sink planted by setting weights is found at the right key and its
// block and head are ranked first; the command writes the report; auto:K retrains that block.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "autograd/check.h"
#include "data/latent_dataset.h"
#include "data/model_io.h"
#include "diagnostics/diagnose.h"
#include "layers/init.h"
#include "layers/rope3d.h"
#include "tests/fixtures.h"
#include "train/trainer.h"

namespace vdit {
namespace {

using testing::ScratchDir;

constexpr int64_t kSinkToken = 5;  // (frame 0, row 1, column 1) of a 4 x 4 token grid

VDiTConfig small_config() { return testing::small_config({.dim = 24, .ffn_dim = 32, .num_heads = 2, .num_layers = 3}); }

// Block 0, head 0 gets a sink at kSinkToken. The patch embedding copies latent channel 0 to
// width 0 and channel 1 to width 1; the data mark every token with channel 0 except the sink
// token, marked with channel 1. With no time modulation, block 0 sees LN of those one-hot
// tokens. Head 0's queries are one constant vector u (a bias) and its keys are +u for the sink
// token and -u for the others, all in the dims RoPE leaves alone when there is one frame
// (the frame pairs), so every query puts its mass on the sink.
ParameterMap planted_sink_params() {
  const VDiTConfig c = small_config();
  ParameterMap p = testing::params_with_random_head(c, 2, 0.2f);
  Tensor patch = Tensor::zeros(p["patch_embedding.weight"].shape());
  patch.data()[0 * (4 * 4) + 0] = 1.0f;      // [0, 0, 0, 0, 0]: width 0 <- channel 0
  patch.data()[1 * 16 + 1 * 4 + 0] = 1.0f;   // [1, 1, 0, 0, 0]: width 1 <- channel 1
  p["patch_embedding.weight"] = patch;
  p["patch_embedding.bias"] = Tensor::zeros({c.dim});
  p["time_projection.1.weight"] = Tensor::zeros(p["time_projection.1.weight"].shape());
  p["time_projection.1.bias"] = Tensor::zeros(p["time_projection.1.bias"].shape());
  p["blocks.0.modulation"] = Tensor::zeros({1, 6, c.dim});
  const int64_t frame_dims = 2 * rope_axis_pairs(c.head_dim())[0];
  Tensor q_bias = Tensor::zeros({c.dim}), k_weight = Tensor::zeros({c.dim, c.dim});
  for (int64_t j = 0; j < frame_dims; ++j) {
    q_bias.data()[j] = 3.0f;
    k_weight.data()[j * c.dim + 1] = 3.0f;   // + width 1 (the sink's mark)
    k_weight.data()[j * c.dim + 0] = -3.0f;  // - width 0 (everyone else's)
  }
  p["blocks.0.self_attn.q.weight"] = Tensor::zeros({c.dim, c.dim});
  p["blocks.0.self_attn.q.bias"] = q_bias;
  p["blocks.0.self_attn.k.weight"] = k_weight;
  p["blocks.0.self_attn.k.bias"] = Tensor::zeros({c.dim});
  return p;
}

void write_marked_data(const std::string& path) {
  Rng rng(4);
  std::vector<LatentSample> samples;
  for (int s = 0; s < 2; ++s) {
    Tensor latents = Tensor::zeros({4, 1, 8, 8});
    for (int64_t t = 0; t < 16; ++t) {
      const int64_t row = t / 4 * 2, col = t % 4 * 2;  // top-left pixel of token t's patch
      latents.data()[(t == kSinkToken ? 1 : 0) * 64 + row * 8 + col] = 1.0f;
    }
    samples.push_back({latents, rng.normal_tensor({3, 6}), "marked"});
  }
  write_latent_dataset(path, samples);
}

TEST(Diagnose, PlantedSinkIsFoundAndRankedFirst) {
  ScratchDir dir;
  write_marked_data(dir / "data.h5");
  const VDiT model(small_config(), planted_sink_params());
  DiagnoseOptions options;
  options.sigmas = {0.0001, 0.0002};  // nearly clean inputs keep the marks intact
  const DiagnosticsReport report = diagnose(model, LatentDataset::open({dir / "data.h5"}), options);
  for (int64_t t = 0; t < 2; ++t) {
    const size_t i = report.index(t, 0, 0);
    EXPECT_GT(report.self_attn.sink_mass[i], 0.9) << "t " << t;
    EXPECT_GT(report.self_attn.top1_over_threshold[i], 0.99);
    ASSERT_FALSE(report.self_attn.sink_keys[i].empty());
    EXPECT_EQ(report.self_attn.sink_keys[i][0], kSinkToken);
    EXPECT_EQ(report.self_attn.sink_positions[i].rfind("(0,1,1)", 0), 0u) << report.self_attn.sink_positions[i];
    EXPECT_LT(report.self_attn.entropy[i], 0.1);
  }
  EXPECT_EQ(rank_blocks_worst_first(report).front(), 0);
  const std::vector<HeadRank> worst = worst_heads(report, report.self_attn, head_metric("sink_mass"), 1);
  ASSERT_EQ(worst.size(), 1u);
  EXPECT_EQ(worst[0].block, 0);
  EXPECT_EQ(worst[0].head, 0);
}

TEST(Diagnose, NonFiniteActivationsAreAClearError) {
  ScratchDir dir;
  write_latent_dataset(dir / "nan.h5", {{Tensor::zeros({4, 1, 8, 8}), Tensor::zeros({3, 6}), "nan"}});
  ParameterMap params = planted_sink_params();
  params["patch_embedding.bias"].data()[0] = NAN;  // data with a NaN is refused on reading; weights are not
  const VDiT model(small_config(), params);
  try {
    diagnose(model, LatentDataset::open({dir / "nan.h5"}), DiagnoseOptions{});
    FAIL() << "NaN activations were diagnosed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block 0 self-attention: attention statistics: the queries are not finite"),
              std::string::npos) << e.what();
  }
}

TEST(Diagnose, CommandWritesTheReportAndAutoPicksTheSinkBlock) {
  ScratchDir dir;
  write_marked_data(dir / "data.h5");
  save_model(dir / "model.h5", small_config(), planted_sink_params(), ModelFormat::H5);
  const testing::CommandResult r = testing::run_vditkit("diagnose --model " + dir / "model.h5" + " --data " +
                                                        dir / "data.h5" + " --out " + dir / "report --timesteps 0.001");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* file : {"report.html", "summary.json", "diagnostics.h5", "self_attn_sink_mass.png"})
    EXPECT_TRUE(std::filesystem::exists(dir / ("report/" + std::string(file)))) << file;
  EXPECT_NE(r.output.find("    0  fail"), std::string::npos) << r.output;  // the sink block fails the default checks

  RetrainOptions o;
  o.model = dir / "model.h5";
  o.data = {dir / "data.h5"};
  o.out = dir / "run";
  o.layers = "auto:1";
  o.steps = 2;
  o.diagnose.sigmas = {0.001};
  o.flow.shift = 1.0;
  Retrainer trainer(o);
  for (const TrainableParameter& p : trainer.trainable()) EXPECT_EQ(p.name.rfind("blocks.0.", 0), 0u) << p.name;
  const RetrainSummary summary = trainer.run(nullptr);
  EXPECT_TRUE(std::filesystem::exists(summary.last_checkpoint + "/report.html"));
  EXPECT_TRUE(std::filesystem::exists(start_report_dir(o.out) + "/report.html"));
}

}  // namespace
}  // namespace vdit
