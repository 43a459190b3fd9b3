// The attention studies on joint attention (issue 17; Mochi-1 with a padded caption and
// CogVideoX-2b): the transferred and the replaced joint attention and the perturbation study's
// entropy against float64 references computed from the calls the models make, and the shape
// errors of a transfer between calls that do not fit.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "autograd/random.h"
#include "autograd/tape.h"
#include "data/model_families.h"
#include "diagnostics/self_attention_entropy.h"
#include "layers/attention_replacement.h"
#include "layers/attention_transfer.h"
#include "tests/autograd_testing.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

const char* const kJointPresets[] = {"mochi-tiny", "cogvideox-tiny"};

// A batch of two [16, 2, 4, 6] latents with 8 context rows, of which `real[r]` are real in row r.
ModelInputs joint_inputs(const ModelFacts& facts, uint64_t seed, std::array<int, 2> real) {
  Rng rng(seed);
  std::vector<float> mask(16, 0.0f);
  for (int r = 0; r < 2; ++r) std::fill(mask.begin() + 8 * r, mask.begin() + 8 * r + real[r], 1.0f);
  return {rng.normal_tensor({2, facts.in_channels, 2, 4, 6}), {300.0, 800.0}, rng.normal_tensor({2, 8, facts.text_dim}),
          Tensor::from_vector({2, 8}, mask)};
}

// What the main attention call of a block got and what the wrapped probe put in its place.
struct Captured {
  Tensor q, k, v, mask, out;
  JointLayout joint;
};

class Capture : public AttentionProbe {
 public:
  explicit Capture(AttentionProbe* inner) : inner_(inner) {}
  Tensor observe(const AttentionCall& call) override {
    const Tensor out = inner_->observe(call);
    if (call.kind != AttentionKind::Cross) last = {call.q, call.k, call.v, call.options.key_mask, out, call.joint};
    return out;
  }
  Captured last;

 private:
  AttentionProbe* inner_;
};

// Batch row r's float64 probabilities softmax(q k^T / sqrt(hd)) over the keys where `keep` is
// true, for q [B, Nq, H, hd] and k [B, Nk, H, hd]: p[(h * Nq + i) * Nk + j], 0 off `keep`.
std::vector<double> probabilities(const Tensor& q, const Tensor& k, int64_t r, const std::vector<bool>& keep) {
  const int64_t nq = q.size(1), nk = k.size(1), heads = q.size(2), hd = q.size(3);
  const std::vector<float> qv = q.to_vector(), kv = k.to_vector();
  const float* qr = qv.data() + r * nq * heads * hd;
  const float* kr = kv.data() + r * nk * heads * hd;
  std::vector<double> p(heads * nq * nk, 0.0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < nq; ++i) {
      double* row = p.data() + (h * nq + i) * nk;
      double top = -INFINITY, z = 0.0;
      for (int64_t j = 0; j < nk; ++j) {
        if (!keep[j]) continue;
        double s = 0.0;
        for (int64_t d = 0; d < hd; ++d) s += static_cast<double>(qr[(i * heads + h) * hd + d]) * kr[(j * heads + h) * hd + d];
        row[j] = s / std::sqrt(static_cast<double>(hd));
        top = std::max(top, row[j]);
      }
      for (int64_t j = 0; j < nk; ++j) z += keep[j] ? (row[j] = std::exp(row[j] - top)) : 0.0;
      for (int64_t j = 0; j < nk; ++j) row[j] /= z;
    }
  return p;
}

// Batch row r of a key mask [B, Nk] as booleans; every key without a mask.
std::vector<bool> unmasked(const Tensor& mask, int64_t r, int64_t keys) {
  if (!mask.defined()) return std::vector<bool>(keys, true);
  const std::vector<float> m = mask.to_vector();
  std::vector<bool> keep(keys);
  for (int64_t j = 0; j < keys; ++j) keep[j] = m[r * keys + j] != 0.0f;
  return keep;
}

// softmax(q_src k_src^T) v over the source's unmasked keys, in float64, [B, Nq, H, hd].
std::vector<double> transferred_reference(const Tensor& q, const Tensor& k, const Tensor& source_mask, const Tensor& v) {
  const int64_t batch = q.size(0), nq = q.size(1), nk = k.size(1), heads = q.size(2), hd = q.size(3);
  const std::vector<float> vv = v.to_vector();
  std::vector<double> out(batch * nq * heads * hd, 0.0);
  for (int64_t r = 0; r < batch; ++r) {
    const std::vector<double> p = probabilities(q, k, r, unmasked(source_mask, r, nk));
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < nk; ++j)
          for (int64_t d = 0; d < hd; ++d)
            out[((r * nq + i) * heads + h) * hd + d] += p[(h * nq + i) * nk + j] * vv[((r * nk + j) * heads + h) * hd + d];
  }
  return out;
}

// The identity (each query its own row's value: row i, or video row i where only the video rows
// query) or the uniform map (the mean value over the unmasked keys), in float64.
std::vector<double> replaced_reference(const Captured& c, AttentionReplacement mode) {
  const int64_t batch = c.v.size(0), nq = c.q.size(1), nk = c.v.size(1), width = c.v.size(2) * c.v.size(3);
  const std::vector<float> v = c.v.to_vector();
  std::vector<double> out(batch * nq * width, 0.0);
  for (int64_t r = 0; r < batch; ++r) {
    const std::vector<bool> keep = unmasked(c.mask, r, nk);
    std::vector<double> mean(width, 0.0);
    double count = 0.0;
    for (int64_t j = 0; j < nk; ++j)
      if (keep[j]) {
        count += 1.0;
        for (int64_t e = 0; e < width; ++e) mean[e] += v[(r * nk + j) * width + e];
      }
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t own = nq == nk ? i : c.joint.video_begin + i;
      for (int64_t e = 0; e < width; ++e)
        out[(r * nq + i) * width + e] =
            mode == AttentionReplacement::Identity ? v[(r * nk + own) * width + e] : mean[e] / count;
    }
  }
  return out;
}

// The mean over batch rows, heads and video queries of the video-to-video map's entropy (the
// joint probabilities of the video keys, renormalised), over log of the video key count.
double video_entropy_reference(const Captured& c) {
  const JointLayout& j = c.joint;
  const int64_t batch = c.q.size(0), nq = c.q.size(1), nk = c.k.size(1), heads = c.q.size(2);
  const int64_t query_begin = nq == nk ? j.video_begin : 0;
  std::vector<bool> video(nk, false);
  for (int64_t n = 0; n < j.video_count; ++n) video[j.video_begin + n] = true;
  double sum = 0.0;
  for (int64_t r = 0; r < batch; ++r) {
    const std::vector<double> p = probabilities(c.q, c.k, r, video);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = query_begin; i < query_begin + j.video_count; ++i) {
        double e = 0.0;
        for (int64_t n = 0; n < nk; ++n) {
          const double x = p[(h * nq + i) * nk + n];
          if (x > 0.0) e -= x * std::log(x);
        }
        sum += e / std::log(static_cast<double>(j.video_count));
      }
  }
  return sum / static_cast<double>(batch * heads * j.video_count);
}

// Every block of each family (Mochi's last block has only its video rows as queries): the
// target's joint attention is the source's map, under the source's key mask, over its own values.
TEST(JointAttentionTransfer, TargetTakesTheSourcesJointMapUnderTheSourcesKeyMask) {
  NoGradScope no_grad;
  for (const char* preset : kJointPresets) {
    const std::unique_ptr<Model> model = create_family_model(preset, 3, 11);
    const bool mochi = model->facts().family == "mochi-1";
    const std::unique_ptr<Model::Stage> source = model->embed_stage(joint_inputs(model->facts(), 12, {5, 8}));
    const std::unique_ptr<Model::Stage> target = model->embed_stage(joint_inputs(model->facts(), 13, {3, 6}));
    TokenStreams hs = source->streams, ht = target->streams;
    for (int b = 0; b < 3; ++b) {
      AttentionMapRecorder recorder;
      hs = model->block_stage(b, hs, *source, &recorder);
      AttentionMapTransfer transfer(recorder);
      Capture capture(&transfer);
      ht = model->block_stage(b, ht, *target, &capture);
      const Captured& c = capture.last;
      ASSERT_TRUE(c.out.defined()) << preset << " block " << b;
      EXPECT_EQ(c.q.size(1), mochi && b == 2 ? c.joint.video_count : c.k.size(1)) << preset << " block " << b;
      EXPECT_EQ(recorder.key_mask().defined(), mochi) << preset;
      EXPECT_TRUE(testing::all_close(c.out.to_vector(), transferred_reference(recorder.q(), recorder.k(), recorder.key_mask(), c.v), 1e-5))
          << preset << " block " << b;
      // The transfer moved something, and under Mochi's padded captions the source's mask is
      // not the target's: the same map under the target's mask is another result.
      AttentionOptions own;
      own.key_mask = c.mask;
      EXPECT_GT(testing::max_abs_difference(c.out, attention(c.q, c.k, c.v, own)), 1e-3) << preset;
      if (mochi) {
        EXPECT_FALSE(testing::all_close(c.out.to_vector(), transferred_reference(recorder.q(), recorder.k(), c.mask, c.v), 1e-3))
            << "block " << b;
      }
    }
  }
}

TEST(JointAttentionTransfer, CallsThatDoNotFitAreErrorsNamingBothShapes) {
  Rng rng(3);
  const Tensor q = rng.normal_tensor({1, 10, 2, 4}), q_video = rng.normal_tensor({1, 6, 2, 4});
  const Tensor k = rng.normal_tensor({1, 10, 2, 4}), k_short = rng.normal_tensor({1, 9, 2, 4});
  const AttentionOptions none;
  AttentionOptions bad_mask;
  bad_mask.key_mask = Tensor::full({1, 9}, 1.0f);
  const JointLayout mochi{0, 6, 6, 4}, cog{4, 6, 0, 4};
  AttentionMapRecorder empty;
  EXPECT_NE(testing::error_of([&] { AttentionMapTransfer(empty).observe({2, AttentionKind::Joint, q, k, k, none, mochi}); })
                .find("attention transfer: block 2 has no recorded source attention"),
            std::string::npos);
  const auto transfer_error = [&](const AttentionCall& source, const AttentionCall& target) {
    AttentionMapRecorder recorder;
    recorder.observe(source);
    return testing::error_of([&] { AttentionMapTransfer(recorder).observe(target); });
  };
  EXPECT_NE(transfer_error({1, AttentionKind::Joint, q, k, k, none, mochi}, {1, AttentionKind::Joint, q, k, k, none, cog})
                .find("block 1 source joint attention (video [0, +6), text [6, +4)) does not match the target's joint "
                      "attention (video [4, +6), text [0, +4))"),
            std::string::npos);
  EXPECT_NE(transfer_error({1, AttentionKind::Self, q, k, k, none}, {1, AttentionKind::Joint, q, k, k, none, mochi})
                .find("source self-attention does not match"),
            std::string::npos);
  EXPECT_NE(transfer_error({0, AttentionKind::Joint, q, k, k, none, mochi},
                           {0, AttentionKind::Joint, q_video, k, k, none, mochi})
                .find("block 0 source queries/keys [1, 10, 2, 4]/[1, 10, 2, 4] do not match the target's "
                      "queries/keys/values [1, 6, 2, 4]/[1, 10, 2, 4]/[1, 10, 2, 4]"),
            std::string::npos);
  EXPECT_NE(transfer_error({0, AttentionKind::Joint, q, k, k, bad_mask, mochi}, {0, AttentionKind::Joint, q, k, k, none, mochi})
                .find("source key mask [1, 9] is not [1, 10]"),
            std::string::npos);
  EXPECT_NE(transfer_error({0, AttentionKind::Self, q, k_short, k_short, none}, {0, AttentionKind::Self, q, k, k, none})
                .find("do not match"),
            std::string::npos);
}

// Identity and uniform in every block of each family, against float64 from the call's values
// (uniform: over the unmasked keys; Mochi's padding is left out, which the plain mean would not).
TEST(JointAttentionReplacement, IdentityAndUniformMatchTheReferenceInEveryBlock) {
  NoGradScope no_grad;
  for (const char* preset : kJointPresets)
    for (AttentionReplacement mode : {AttentionReplacement::Identity, AttentionReplacement::Uniform}) {
      const std::unique_ptr<Model> model = create_family_model(preset, 3, 21);
      const std::unique_ptr<Model::Stage> stage = model->embed_stage(joint_inputs(model->facts(), 22, {5, 2}));
      AttentionReplacer replacer({0, 1, 2}, mode);
      Capture capture(&replacer);
      TokenStreams h = stage->streams;
      for (int b = 0; b < 3; ++b) {
        h = model->block_stage(b, h, *stage, &capture);
        const Captured& c = capture.last;
        ASSERT_TRUE(c.out.defined()) << preset << " block " << b;
        EXPECT_EQ(c.out.shape(), c.q.shape()) << preset << " block " << b;
        EXPECT_TRUE(testing::all_close(c.out.to_vector(), replaced_reference(c, mode), 1e-6)) << preset << " block " << b;
        if (c.mask.defined() && mode == AttentionReplacement::Uniform) {
          EXPECT_GT(testing::max_abs_difference(slice(c.out, 1, 0, 1), mean(c.v, {1}, true)), 1e-4) << "block " << b;
        }
      }
    }
}

// The perturbation study's entropy of a joint block is its video-to-video part's.
TEST(JointAttentionEntropy, IsTheVideoToVideoEntropyOfEveryCall) {
  NoGradScope no_grad;
  for (const char* preset : kJointPresets) {
    const std::unique_ptr<Model> model = create_family_model(preset, 3, 31);
    const std::unique_ptr<Model::Stage> stage = model->embed_stage(joint_inputs(model->facts(), 32, {4, 7}));
    SelfAttentionEntropy entropy(3);
    Capture capture(&entropy);
    TokenStreams h = stage->streams;
    for (int b = 0; b < 3; ++b) {
      h = model->block_stage(b, h, *stage, &capture);
      const double expected = video_entropy_reference(capture.last);
      EXPECT_GT(expected, 0.0);
      EXPECT_NEAR(entropy.mean_entropy()[b], expected, 1e-5) << preset << " block " << b;
    }
  }
}

}  // namespace
}  // namespace vdit
