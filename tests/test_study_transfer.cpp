// Attention-map transfer editing (issue 16): the lockstep sampler against the same steps done
// by hand, bit-identity where the transfer has nothing to change, the transferred attention
// against a float64 reference, and the `sample --transfer-from` and `study transfer` commands.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "autograd/random.h"
#include "autograd/tape.h"
#include "data/hdf5_file.h"
#include "layers/attention_transfer.h"
#include "layers/vdit.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"
#include "train/flow_matching.h"
#include "train/transfer_study.h"

namespace vdit {
namespace {

VDiTConfig small_config() { return testing::small_config({.dim = 24, .ffn_dim = 32, .num_heads = 2, .num_layers = 3, .in_dim = 3}); }

VDiT small_model() { return VDiT(small_config(), testing::params_with_random_head(small_config(), 3, 0.3f)); }

const Shape kLatents{3, 2, 4, 4};  // 16 tokens

SamplingOptions guided_options() {
  SamplingOptions o;
  o.steps = 2;
  o.guidance = 3.0;
  o.shift = 2.0;
  o.seed = 9;
  return o;
}

// Self-attention queries and keys of one block, as the test's own recorder (not the library's).
class BlockRecorder : public AttentionProbe {
 public:
  explicit BlockRecorder(int block) : block_(block) {}
  Tensor observe(const AttentionCall& call) override {
    if (call.kind == AttentionKind::Self && call.block == block_) q = call.q, k = call.k;
    return {};
  }
  Tensor q, k;

 private:
  int block_;
};

// Replaces one block's self-attention by attention(q, k, own v).
class BlockReplacer : public AttentionProbe {
 public:
  BlockReplacer(int block, const BlockRecorder& source) : block_(block), source_(source) {}
  Tensor observe(const AttentionCall& call) override {
    if (call.kind != AttentionKind::Self || call.block != block_) return {};
    return attention(source_.q, source_.k, call.v, call.options);
  }

 private:
  int block_;
  const BlockRecorder& source_;
};

TEST(TransferSampling, SamePromptIsBitIdenticalToPlainSampling) {
  const VDiT model = small_model();
  Rng rng(5);
  const Tensor context = rng.normal_tensor({3, 6});
  const Tensor plain = sample(model, kLatents, context, guided_options());
  const std::vector<Tensor> got =
      sample_with_transfer(model, kLatents, context, {{context, {0, 1, 2}}}, guided_options(), TransferSteps{});
  EXPECT_EQ(testing::bit_pattern(got[0]), testing::bit_pattern(plain));
  EXPECT_EQ(testing::bit_pattern(got[1]), testing::bit_pattern(plain));
}

TEST(TransferSampling, ATargetWithoutBlocksIsItsPlainSample) {
  const VDiT model = small_model();
  Rng rng(6);
  const Tensor source = rng.normal_tensor({3, 6}), target = rng.normal_tensor({2, 6});
  const std::vector<Tensor> got =
      sample_with_transfer(model, kLatents, source, {{target, {}}, {target, {1}}}, guided_options(), TransferSteps{});
  EXPECT_EQ(testing::bit_pattern(got[0]), testing::bit_pattern(sample(model, kLatents, source, guided_options())));
  EXPECT_EQ(testing::bit_pattern(got[1]), testing::bit_pattern(sample(model, kLatents, target, guided_options())));
  EXPECT_GT(testing::max_abs_difference(got[2], got[1]), 1e-4) << "transferring block 1 changed nothing";
}

// Two guided Euler steps by hand: each step the source runs first and its block-b map goes into
// the target's conditional and unconditional passes; only the second step transfers.
TEST(TransferSampling, GuidedStepsMatchTheEquationsWithTheSourcesMapInBothPasses) {
  const VDiT model = small_model();
  Rng rng(7);
  const Tensor source = rng.normal_tensor({3, 6}), target = rng.normal_tensor({4, 6});
  const int block = 1;
  const std::vector<Tensor> got =
      sample_with_transfer(model, kLatents, source, {{target, {block}}}, guided_options(), TransferSteps{1, 1});

  NoGradScope no_grad;
  Rng noise(9);
  Tensor xs = noise.normal_tensor({1, 3, 2, 4, 4}), xt = xs;
  auto text = [](const Tensor& context) {
    return concat({concat({reshape(context, {1, context.size(0), 6}), Tensor::zeros({1, 5 - context.size(0), 6})}, 1),
                   Tensor::zeros({1, 5, 6})},
                  0);
  };
  auto guide = [](const Tensor& out) {
    const std::vector<Tensor> p = chunk(out, 0, 2);
    return add(p[1], scale(sub(p[0], p[1]), 3.0f));
  };
  const std::vector<double> sigmas = {1.0, shift_sigma(0.5, 2.0), 0.0};
  for (int i = 0; i < 2; ++i) {
    const std::vector<double> t(2, 1000.0 * sigmas[i]);
    BlockRecorder recorder(block);
    const Tensor vs = guide(model.forward(concat({xs, xs}, 0), t, text(source), &recorder));
    BlockReplacer replacer(block, recorder);
    const Tensor vt = guide(model.forward(concat({xt, xt}, 0), t, text(target), i == 1 ? &replacer : nullptr));
    xs = add(xs, scale(vs, static_cast<float>(sigmas[i + 1] - sigmas[i])));
    xt = add(xt, scale(vt, static_cast<float>(sigmas[i + 1] - sigmas[i])));
  }
  EXPECT_EQ(testing::bit_pattern(got[0]), testing::bit_pattern(reshape(xs, kLatents)));
  EXPECT_EQ(testing::bit_pattern(got[1]), testing::bit_pattern(reshape(xt, kLatents)));
}

// softmax(q_s k_s^T / sqrt(hd)) v_t in float64, for [1, N, H, hd] tensors.
std::vector<double> transferred_reference(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t n = q.size(1), heads = q.size(2), hd = q.size(3);
  const std::vector<float> qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  std::vector<double> out(qv.size(), 0.0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> p(n);
      double top = -INFINITY, z = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (int64_t d = 0; d < hd; ++d) s += static_cast<double>(qv[(i * heads + h) * hd + d]) * kv[(j * heads + h) * hd + d];
        p[j] = s / std::sqrt(static_cast<double>(hd));
        top = std::max(top, p[j]);
      }
      for (double& x : p) z += (x = std::exp(x - top));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < hd; ++d) out[(i * heads + h) * hd + d] += p[j] / z * vv[(j * heads + h) * hd + d];
    }
  return out;
}

// Block by block: transferring block b leaves every earlier block's output as it was, changes
// block b's, and block b's self-attention output is the source's map applied to its own values.
TEST(TransferSampling, TransferringABlockChangesThatBlockAndNotTheEarlierOnes) {
  NoGradScope no_grad;
  const VDiT model = small_model();
  Rng rng(8);
  // Different latents, as source and target have after the first step (before any text enters,
  // block 0's self-attention sees only the latents and the timestep).
  const VDiT::Embedded source = model.embed(rng.normal_tensor({1, 3, 2, 4, 4}), {700.0}, reshape(rng.normal_tensor({3, 6}), {1, 3, 6}));
  const VDiT::Embedded target = model.embed(rng.normal_tensor({1, 3, 2, 4, 4}), {700.0}, reshape(rng.normal_tensor({4, 6}), {1, 4, 6}));
  for (int b = 0; b < 3; ++b) {
    Tensor hs = source.tokens, plain = target.tokens, moved = target.tokens;
    for (int j = 0; j < 3; ++j) {
      AttentionMapRecorder recorder;
      hs = model.run_block(j, hs, source, &recorder);
      plain = model.run_block(j, plain, target);
      if (j != b) {
        moved = model.run_block(j, moved, target);
      } else {
        // The transfer probe's output for this block and the values it was given, captured by
        // a probe around it, to check the transferred attention against float64.
        struct Capture : AttentionProbe {
          AttentionMapTransfer* transfer;
          Tensor out, v;
          Tensor observe(const AttentionCall& call) override {
            if (call.kind == AttentionKind::Self) v = call.v;
            const Tensor r = transfer->observe(call);
            if (call.kind == AttentionKind::Self) out = r;
            return r;
          }
        } capture;
        AttentionMapTransfer transfer(recorder);
        capture.transfer = &transfer;
        moved = model.run_block(j, moved, target, &capture);
        EXPECT_TRUE(testing::all_close(capture.out.to_vector(), transferred_reference(recorder.q(), recorder.k(), capture.v), 1e-5))
            << "block " << j;
      }
      if (j < b) {
        EXPECT_EQ(testing::bit_pattern(moved), testing::bit_pattern(plain)) << "transfer at " << b << " changed block " << j;
      } else {
        EXPECT_GT(testing::max_abs_difference(moved, plain), 1e-5) << "transfer at " << b << " left block " << j << " unchanged";
      }
    }
  }
}

TEST(TransferStudy, OneRowPerBlockThenAllBlocksWithDistancesToBoth) {
  const VDiT model = small_model();
  Rng rng(9);
  const Tensor source = rng.normal_tensor({3, 6}), target = rng.normal_tensor({2, 6});
  const TransferStudy study = run_transfer_study(model, kLatents, source, target, {0, 2}, guided_options(), TransferSteps{});
  ASSERT_EQ(study.rows.size(), 3u);
  EXPECT_EQ(study.rows[2].blocks, (std::vector<int>{0, 2}));
  EXPECT_EQ(study.target_comparison.rms_to_target, 0.0);
  EXPECT_GT(study.target_comparison.rms_to_source, 0.0);
  EXPECT_EQ(study.target_comparison.psnr_to_target, std::vector<double>(2, INFINITY));
  const std::vector<Tensor> alone =
      sample_with_transfer(model, kLatents, source, {{target, {2}}}, guided_options(), TransferSteps{});
  EXPECT_EQ(testing::bit_pattern(study.rows[1].sample), testing::bit_pattern(alone[1]));
  // RMS and PSNR against the definitions, in double.
  const std::vector<float> a = study.rows[1].sample.to_vector(), s = study.source.to_vector();
  double sum = 0.0, frame0 = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += (static_cast<double>(a[i]) - s[i]) * (a[i] - s[i]);
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t p = 0; p < 16; ++p) {
      const size_t i = static_cast<size_t>(ch * 32 + p);  // frame 0 of [3, 2, 4, 4]
      auto pix = [](float x) { return std::clamp((x + 1.0) * 0.5, 0.0, 1.0); };
      frame0 += (pix(a[i]) - pix(s[i])) * (pix(a[i]) - pix(s[i]));
    }
  EXPECT_NEAR(study.rows[1].comparison.rms_to_source, std::sqrt(sum / a.size()), 1e-9);
  EXPECT_NEAR(study.rows[1].comparison.psnr_to_source[0], -10.0 * std::log10(frame0 / 48.0), 1e-4);
}

TEST(SampleTransferCommand, SamePromptWritesThePlainSampleAndBadFlagsAreClearErrors) {
  testing::ScratchDir dir;
  ASSERT_EQ(testing::run_vditkit("create --preset tiny --layers 2 --out " + dir / "m.h5").exit_code, 0);
  const std::string base = "sample --model " + dir / "m.h5" + " --frames 1 --size 4x4 --steps 2 --guidance 2 --prompt 'a cat' ";
  ASSERT_EQ(testing::run_vditkit(base + "--out " + dir / "plain.h5").exit_code, 0);
  const testing::CommandResult same =
      testing::run_vditkit(base + "--transfer-from 'a cat' --transfer-layers 0,1 --out " + dir / "t.h5 --source-out " + dir / "s.h5");
  ASSERT_EQ(same.exit_code, 0) << same.output;
  const Tensor p = Hdf5File(dir / "plain.h5", Hdf5File::Mode::Read).read("latents");
  EXPECT_EQ(testing::bit_pattern(Hdf5File(dir / "t.h5", Hdf5File::Mode::Read).read("latents")), testing::bit_pattern(p));
  EXPECT_EQ(testing::bit_pattern(Hdf5File(dir / "s.h5", Hdf5File::Mode::Read).read("latents")), testing::bit_pattern(p));

  const std::pair<std::string, std::string> bad[] = {
      {"--transfer-from 'a dog' --transfer-steps 0-1", "--transfer-steps 0-1: needs 1 <= A <= B <= --steps (2)"},
      {"--transfer-from 'a dog' --transfer-steps 3", "--transfer-steps 3: needs 1 <= A <= B <= --steps (2)"},
      {"--transfer-from 'a dog' --transfer-steps x", "--transfer-steps must be all, A-B or A"},
      {"--transfer-from 'a dog' --transfer-layers 2", "--transfer-layers"},
      {"--source-out x.h5", "need --transfer-from"},
  };
  for (const auto& [flags, message] : bad) {
    const testing::CommandResult r = testing::run_vditkit(base + flags + " --out " + dir / "x.h5");
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_NE(r.output.find(message), std::string::npos) << flags << ": " << r.output;
  }
}

TEST(StudyTransferCommand, WritesJsonReportAndSamplesAndRefusesBadFlags) {
  testing::ScratchDir dir;
  ASSERT_EQ(testing::run_vditkit("create --preset pixel-tiny --layers 2 --out " + dir / "m.h5").exit_code, 0);
  const std::string base = "study transfer --model " + dir / "m.h5" + " --frames 2 --size 4x4 --steps 2 --guidance 2 ";
  const testing::CommandResult r =
      testing::run_vditkit(base + "--prompt 'a red square' --target 'a blue square' --out " + dir / "study");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "study/transfer.json");
  const nlohmann::json json = nlohmann::json::parse(in);
  ASSERT_EQ(json["rows"].size(), 3u);
  EXPECT_EQ(json["rows"][2]["name"], "all blocks");
  EXPECT_EQ(json["rows"][0]["blocks"], nlohmann::json({0}));
  EXPECT_EQ(json["plain_target"]["rms_to_target"], 0.0);
  EXPECT_EQ(json["rows"][1]["psnr_to_source"].size(), 2u);  // pixel-space: per frame
  std::ifstream report(dir / "study/report.html");
  const std::string html((std::istreambuf_iterator<char>(report)), {});
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<td>block 1</td>"), std::string::npos);
  const Hdf5File samples(dir / "study/samples.h5", Hdf5File::Mode::Read);
  EXPECT_EQ(samples.shape("all_blocks"), (Shape{3, 2, 4, 4}));

  const std::pair<std::string, std::string> bad[] = {
      {"--prompt a --out " + dir / "x", "--target"},
      {"--prompt a --target b --blocks 7 --out " + dir / "x", "--blocks"},
      {"--prompt a --target b --transfer-steps 5 --out " + dir / "x", "--transfer-steps 5: needs 1 <= A"},
  };
  for (const auto& [flags, message] : bad) {
    const testing::CommandResult e = testing::run_vditkit(base + flags);
    EXPECT_NE(e.exit_code, 0) << flags;
    EXPECT_NE(e.output.find(message), std::string::npos) << flags << ": " << e.output;
  }
  const testing::CommandResult unknown = testing::run_vditkit("study nosuch");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("unknown study 'nosuch' (studies: transfer"), std::string::npos) << unknown.output;
}

}  // namespace
}  // namespace vdit
