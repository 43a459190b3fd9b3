// Attention perturbation (issue 16, item 4): identity and uniform self-attention against
// float64 by hand, the entropy beside them against its extremes, the study against plain
// sampling, and the `study perturb` command.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "autograd/random.h"
#include "autograd/tape.h"
#include "data/hdf5_file.h"
#include "diagnostics/self_attention_entropy.h"
#include "layers/attention_layer.h"
#include "layers/vdit.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/perturb_study.h"

namespace vdit {
namespace {

// out_i = W_o a_i + b_o with a_i = W_v x_i + b_v (identity) or the mean over j of W_v x_j + b_v
// (uniform), in float64, for x [1, N, d].
std::vector<double> replaced_reference(const AttentionLayer& layer, const Tensor& x, AttentionReplacement mode) {
  const int64_t n = x.size(1), d = x.size(2);
  const std::vector<float> xs = x.to_vector(), wv = layer.v.weight.to_vector(), bv = layer.v.bias.to_vector(),
                           wo = layer.o.weight.to_vector(), bo = layer.o.bias.to_vector();
  std::vector<double> values(n * d), out(n * d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < d; ++r) {
      double s = bv[r];
      for (int64_t c = 0; c < d; ++c) s += static_cast<double>(wv[r * d + c]) * xs[i * d + c];
      values[i * d + r] = s;
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < d; ++r) {
      double s = bo[r];
      for (int64_t c = 0; c < d; ++c) {
        double a = values[i * d + c];
        if (mode == AttentionReplacement::Uniform) {
          a = 0.0;
          for (int64_t j = 0; j < n; ++j) a += values[j * d + c] / static_cast<double>(n);
        }
        s += static_cast<double>(wo[r * d + c]) * a;
      }
      out[i * d + r] = s;
    }
  return out;
}

TEST(AttentionReplacement, IdentityAndUniformMatchHandComputedOutputs) {
  NoGradScope no_grad;
  Rng rng(3);
  const int64_t d = 12, n = 3;  // two heads of 6, the least RoPE takes
  AttentionLayer layer;
  layer.num_heads = 2;
  for (Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o}) *l = {rng.normal_tensor({d, d}), rng.normal_tensor({d})};
  const Tensor x = rng.normal_tensor({1, n, d});
  const RopeTables rope = make_rope_tables({1, 1, n}, d / 2);
  for (AttentionReplacement mode : {AttentionReplacement::Identity, AttentionReplacement::Uniform}) {
    AttentionReplacer replacer({5}, mode);
    const Tensor got = layer.self_attention(x, rope, &replacer, 5);
    EXPECT_TRUE(testing::all_close(got.to_vector(), replaced_reference(layer, x, mode), 1e-5));
    // Another block's attention is left alone.
    const Tensor other = layer.self_attention(x, rope, &replacer, 4);
    EXPECT_EQ(testing::bit_pattern(other), testing::bit_pattern(layer.self_attention(x, rope)));
  }
}

TEST(SelfAttentionEntropy, UniformMapsGiveOneAndOneHotMapsNearlyZero) {
  // Keys along the axes; queries zero (every logit equal: the uniform map, entropy 1) or a large
  // multiple of their own key (nearly all mass on it).
  const int64_t n = 4, hd = 4;
  Tensor k = Tensor::zeros({1, n, 1, hd}), q_sharp = Tensor::zeros({1, n, 1, hd});
  for (int64_t i = 0; i < n; ++i) k.data()[i * hd + i] = 1.0f, q_sharp.data()[i * hd + i] = 60.0f;
  const Tensor q_flat = Tensor::zeros({1, n, 1, hd});
  const AttentionOptions options;
  SelfAttentionEntropy entropy(2);
  entropy.observe({0, AttentionKind::Self, q_flat, k, k, options});
  entropy.observe({1, AttentionKind::Self, q_flat, k, k, options});
  entropy.observe({1, AttentionKind::Self, q_sharp, k, k, options});
  entropy.observe({1, AttentionKind::Cross, q_sharp, k, k, options});  // not counted
  // p_own = 1 / (1 + 3 e^-30): entropy ~ 3 e^-30 (30 + 1) / log 4, far below 1e-6.
  const std::vector<double> got = entropy.mean_entropy();
  EXPECT_NEAR(got[0], 1.0, 1e-6);
  EXPECT_NEAR(got[1], 0.5, 1e-6);
}

VDiTConfig small_config() { return testing::small_config({.dim = 24, .ffn_dim = 32, .num_heads = 2, .num_layers = 2, .in_dim = 3}); }

TEST(PerturbStudy, RowsAreSamplesWithTheReplacementAndTheReferenceIsThePlainSample) {
  const VDiT model(small_config(), testing::params_with_random_head(small_config(), 3, 0.3f));
  Rng rng(4);
  const Tensor context = rng.normal_tensor({3, 6});
  SamplingOptions o;
  o.steps = 2;
  o.guidance = 3.0;
  o.shift = 2.0;
  const Shape shape{3, 2, 4, 4};
  int64_t last = 0;
  const PerturbStudy study = run_perturb_study(model, shape, context, {0, 1}, AttentionReplacement::Uniform, o,
                                               [&](int64_t done, int64_t total) {
                                                 last = done;
                                                 EXPECT_EQ(total, 8);
                                               });
  EXPECT_EQ(last, 8);
  EXPECT_EQ(testing::bit_pattern(study.reference), testing::bit_pattern(sample(model, shape, context, o)));
  ASSERT_EQ(study.rows.size(), 3u);
  EXPECT_EQ(study.rows[2].name, "all blocks");
  AttentionReplacer block1({1}, AttentionReplacement::Uniform);
  EXPECT_EQ(testing::bit_pattern(study.rows[1].sample), testing::bit_pattern(sample(model, shape, context, o, {}, &block1)));
  ASSERT_EQ(study.entropy.size(), 2u);
  for (double e : study.entropy) EXPECT_TRUE(e > 0.0 && e <= 1.0) << e;
  EXPECT_EQ(study.rows[1].entropy, study.entropy[1]);
  EXPECT_NEAR(study.rows[2].entropy, (study.entropy[0] + study.entropy[1]) / 2, 1e-12);
  for (const PerturbStudyRow& row : study.rows) {
    EXPECT_GT(row.rms_to_reference, 1e-4) << row.name;
    EXPECT_EQ(row.psnr_to_reference.size(), 2u);
  }
}

TEST(StudyPerturbCommand, WritesJsonReportAndSamplesAndRefusesBadFlags) {
  testing::ScratchDir dir;
  ASSERT_EQ(testing::run_vditkit("create --preset pixel-tiny --layers 2 --out " + dir / "m.h5").exit_code, 0);
  const std::string base = "study perturb --model " + dir / "m.h5" + " --frames 2 --size 4x4 --steps 2 --guidance 2 --prompt 'a red square' ";
  const testing::CommandResult r = testing::run_vditkit(base + "--mode identity --layers 1 --out " + dir / "study");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "study/perturb.json");
  const nlohmann::json json = nlohmann::json::parse(in);
  ASSERT_EQ(json["rows"].size(), 2u);  // block 1, then all chosen blocks (block 1 again)
  EXPECT_EQ(json["rows"][0]["name"], "block 1");
  EXPECT_EQ(json["entropy"].size(), 2u);
  EXPECT_EQ(json["rows"][0]["rms_to_reference"], json["rows"][1]["rms_to_reference"]);
  std::ifstream report(dir / "study/report.html");
  const std::string html((std::istreambuf_iterator<char>(report)), {});
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(Hdf5File(dir / "study/samples.h5", Hdf5File::Mode::Read).shape("unperturbed"), (Shape{3, 2, 4, 4}));

  const std::pair<std::string, std::string> bad[] = {
      {"--mode diagonal --out " + dir / "x", "--mode must be identity or uniform, got 'diagonal'"},
      {"--mode uniform --layers 2 --out " + dir / "x", "--layers"},
      {"--out " + dir / "x", "--mode"},
  };
  for (const auto& [flags, message] : bad) {
    const testing::CommandResult e = testing::run_vditkit(base + flags);
    EXPECT_NE(e.exit_code, 0) << flags;
    EXPECT_NE(e.output.find(message), std::string::npos) << flags << ": " << e.output;
  }
}

}  // namespace
}  // namespace vdit
