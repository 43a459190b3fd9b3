// A training run's checkpoint report shows its loss curve and, for pixel-space models,
// validation samples (PNG frames and an MP4).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/clip_generator.h"
#include "data/model_io.h"
#include "data/text_embedding_table.h"
#include "data/video_io.h"
#include "tests/fixtures.h"
#include "train/run_report.h"
#include "train/trainer.h"

namespace vdit {
namespace {

using testing::ScratchDir;

TEST(RunReport, LossCurveHasOnePointPerStep) {
  ScratchDir dir;
  std::ofstream(dir / "log.jsonl") << R"({"step":1,"loss":2,"smoothed_loss":2})" "\n"
                                   << R"({"step":1,"checkpoint":"x","diagnostics":{}})" "\n"
                                   << R"({"step":2,"loss":1,"smoothed_loss":1.5})" "\n"
                                   << R"({"step":3,"loss":1,"smoothed_loss":1.2})" "\n";
  const std::string html = loss_curve_html(dir / "log.jsonl");
  EXPECT_NE(html.find("points=\"0.0,0.0 300.0,125.0 600.0,200.0 \""), std::string::npos) << html;
  std::ofstream(dir / "one.jsonl") << R"({"step":1,"loss":2,"smoothed_loss":2})" "\n";
  EXPECT_EQ(loss_curve_html(dir / "one.jsonl"), "");
}

TEST(RunReport, PixelRunCheckpointShowsLossAndSamples) {
  if (!video_io_available()) GTEST_SKIP() << "built with -DVDITKIT_VIDEO=OFF: no MP4 or PNG samples";
  ScratchDir dir;
  const VDiTConfig config = testing::small_config({.dim = 24, .ffn_dim = 32, .num_heads = 2, .num_layers = 2,
                                                   .in_dim = 3, .text_dim = 8, .text_len = 6});
  save_model(dir / "model.h5", config, testing::params_with_random_head(config, 1, 0.1f), ModelFormat::H5);
  std::vector<LatentSample> samples;
  for (const Clip& clip : generate_clips(3, 2, 8, 8, 0)) {
    Tensor latents = clip.frames.clone();
    for (int64_t i = 0; i < latents.numel(); ++i) latents.data()[i] = latents.data()[i] * 2.0f - 1.0f;
    samples.push_back({latents, embed_caption(clip.caption, 8, 6), clip.caption});
  }
  write_latent_dataset(dir / "data.h5", samples);
  RetrainOptions o;
  o.model = dir / "model.h5";
  o.data = {dir / "data.h5"};
  o.out = dir / "run";
  o.layers = "1";
  o.steps = 3;
  o.flow.shift = 1.0;
  o.validation_samples = 1;
  const std::string checkpoint = Retrainer(o).run(nullptr).last_checkpoint;
  std::ifstream in(checkpoint + "/report.html");
  const std::string html((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(html.find("<h2>Training loss</h2>"), std::string::npos);
  EXPECT_NE(html.find("sample_0_000.png"), std::string::npos);
  EXPECT_NE(html.find(samples[0].prompt), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(checkpoint + "/sample_0_000.png"));
  EXPECT_TRUE(std::filesystem::exists(checkpoint + "/sample_0_001.png"));
  EXPECT_TRUE(std::filesystem::exists(checkpoint + "/sample_0.mp4"));
}

}  // namespace
}  // namespace vdit
