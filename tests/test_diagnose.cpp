// Diagnosing whole models: a sink planted by setting weights is found at the right key and its
// block and head are ranked first; the command writes the report; auto:K retrains that block;
// the joint attention of Mochi-1 and CogVideoX-2b is reported in its three parts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "autograd/check.h"
#include "data/latent_dataset.h"
#include "data/model_families.h"
#include "data/model_io.h"
#include "diagnostics/diagnose.h"
#include "diagnostics/thresholds.h"
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


// A tiny Mochi-1 (keys video then text, a padded caption, the last block's queries the video
// rows only) and a tiny CogVideoX-2b (text then video) diagnosed through the model seam: the
// report holds their joint attention in the three parts of joint_attention.h, [T, B, H] each,
// with numbers in (0, 1] where a block has the part and NaN where it has not, video sinks at
// (frame, row, column), text sinks among the real rows only, the joint attention's
// sparsification under self_attn, and every number back from diagnostics.h5.
TEST(Diagnose, JointAttentionIsReportedInThreeParts) {
  ScratchDir dir;
  for (const std::string preset : {"mochi-tiny", "cogvideox-tiny"}) {
    SCOPED_TRACE(preset);
    const std::unique_ptr<Model> model = create_family_model(preset, 3, 4);
    const ModelFacts f = model->facts();
    ASSERT_TRUE(f.joint_attention);
    const bool mochi = f.family == "mochi-1";
    const int64_t rows = 8, real = mochi ? 5 : rows, B = 3, H = f.num_heads;
    Rng rng(5);
    std::vector<LatentSample> samples;
    for (int i = 0; i < 2; ++i) {
      samples.push_back({rng.normal_tensor({f.in_channels, 2, 4, 6}), rng.normal_tensor({rows, f.text_dim}), "p"});
      if (mochi) samples.back().context_mask = Tensor::from_vector({rows}, {1, 1, 1, 1, 1, 0, 0, 0});
    }
    write_latent_dataset(dir / (preset + ".h5"), samples);
    DiagnoseOptions options;
    options.sigmas = {0.8, 0.3};
    const DiagnosticsReport r = diagnose(*model, LatentDataset::open({dir / (preset + ".h5")}), options);
    const size_t tbh = static_cast<size_t>(2 * B * H);
    ASSERT_EQ(r.text_attn.entropy.size(), tbh);
    ASSERT_EQ(r.cross_attn.text_key_mass.size(), tbh);
    ASSERT_EQ(r.text_attn.text_key_mass.size(), tbh);
    const auto in_unit = [](double x) { return x > 0.0 && x <= 1.0; };
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h) {
          SCOPED_TRACE("t " + std::to_string(t) + ", block " + std::to_string(b) + ", head " + std::to_string(h));
          const size_t i = r.index(t, b, h);
          EXPECT_TRUE(in_unit(r.self_attn.entropy[i])) << r.self_attn.entropy[i];
          EXPECT_TRUE(in_unit(r.cross_attn.entropy[i])) << r.cross_attn.entropy[i];
          EXPECT_NEAR(r.self_attn.frame_distance_mass[i * 2] + r.self_attn.frame_distance_mass[i * 2 + 1], 1.0, 1e-5);
          EXPECT_TRUE(in_unit(r.cross_attn.text_key_mass[i]) && r.cross_attn.text_key_mass[i] < 1.0);
          EXPECT_EQ(r.self_attn.sink_positions[i].rfind("(", 0), 0u) << r.self_attn.sink_positions[i];
          EXPECT_EQ(r.cross_attn.sink_positions[i].rfind("text ", 0), 0u) << r.cross_attn.sink_positions[i];
          for (int64_t key : r.cross_attn.sink_keys[i]) EXPECT_LT(key, real);  // padding gets no mass
          if (mochi && b == B - 1) {  // video queries only: no text-to-all part
            EXPECT_TRUE(std::isnan(r.text_attn.entropy[i]));
            EXPECT_TRUE(std::isnan(r.text_attn.text_key_mass[i]));
            continue;
          }
          EXPECT_TRUE(in_unit(r.text_attn.entropy[i])) << r.text_attn.entropy[i];
          EXPECT_TRUE(in_unit(r.text_attn.text_key_mass[i]) && r.text_attn.text_key_mass[i] < 1.0);
          for (int64_t key : r.text_attn.sink_keys[i]) EXPECT_LT(key, 12 + real);  // video and real text keys
        }
    EXPECT_TRUE(r.cross_attn.sparsify_error.empty());
    for (double e : r.self_attn.sparsify_error) EXPECT_TRUE(std::isfinite(e) && e > 0.0) << e;
    EXPECT_EQ(rank_blocks_worst_first(r).size(), 3u);

    write_report(dir / (preset + "-report"), r, Thresholds::defaults());
    const DiagnosticsReport back = read_diagnostics_h5(dir / (preset + "-report/diagnostics.h5"));
    for (const auto& [read, written] : {std::pair{&back.text_attn.entropy, &r.text_attn.entropy},
                                        {&back.text_attn.text_key_mass, &r.text_attn.text_key_mass},
                                        {&back.cross_attn.text_key_mass, &r.cross_attn.text_key_mass}}) {
      ASSERT_EQ(read->size(), written->size());
      for (size_t i = 0; i < read->size(); ++i)
        EXPECT_TRUE(std::isnan((*written)[i]) ? std::isnan((*read)[i]) : std::fabs((*read)[i] - (*written)[i]) < 1e-6);
    }
  }
}

}  // namespace
}  // namespace vdit
