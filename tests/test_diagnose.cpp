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
#include "layers/vdit.h"
#include "tests/fixtures.h"
#include "tests/planted_sink.h"
#include "train/trainer.h"

namespace vdit {
namespace {

using testing::ScratchDir;

using testing::kSinkToken;
using testing::planted_sink_params;
using testing::small_config;
using testing::write_marked_data;

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
    // Sink anatomy: the sink's value is kSinkValueRatio times the mean (planted_sink.h), and it
    // is in the first (only) frame with every other sink key of the head.
    ASSERT_FALSE(report.self_attn.sink_value_norm[i].empty());
    EXPECT_NEAR(report.self_attn.sink_value_norm[i][0], testing::kSinkValueRatio, 1e-3 * testing::kSinkValueRatio);
    EXPECT_EQ(report.self_attn.sink_first_frame[i], 1.0);
  }
  const SinkAnatomy sink = sink_anatomy(report, report.self_attn, 0);
  EXPECT_EQ(sink.head, 0);
  EXPECT_EQ(sink.top_key, kSinkToken);
  EXPECT_TRUE(sink.stable);
  EXPECT_NEAR(sink.value_norm, testing::kSinkValueRatio, 1e-3 * testing::kSinkValueRatio);
  EXPECT_NEAR(sink.first_frame_share, 1.0, 1e-12);
  EXPECT_GT(sink_anatomy(report, report.cross_attn, 0).first_key_mass, 0.0);
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
