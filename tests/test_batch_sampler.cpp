// The batch sampler: every sample once per epoch, batches of one latent shape, a fresh seeded
// order each epoch, and a run resumed from RunState drawing exactly the batches the
// uninterrupted run draws. collate stacks latents and zero-pads contexts, with a mask of the
// real rows wherever a sample has a mask or the lengths differ.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "autograd/check.h"
#include "data/latent_dataset.h"
#include "data/synthetic_data.h"
#include "tests/fixtures.h"
#include "train/batch_sampler.h"
#include "train/run_state.h"

namespace vdit {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::ScratchDir;

// 7 samples of latents [2, 1, 4, 4] and 4 of [2, 1, 4, 6], interleaved in the file so that
// grouping by shape cannot come from file order. Batches of 3 give 3 + 2 per epoch.
class BatchSamplerTest : public ::testing::Test {
 protected:
  static constexpr int64_t kSamples = 11, kBatchSize = 3, kBatches = 5;

  void SetUp() override {
    const std::vector<LatentSample> square = make_synthetic_samples(spec(7, 4, 1));
    const std::vector<LatentSample> wide = make_synthetic_samples(spec(4, 6, 2));
    std::vector<LatentSample> samples;
    for (size_t i = 0; i < square.size(); ++i) {
      samples.push_back(square[i]);
      if (i < wide.size()) samples.push_back(wide[i]);
    }
    write_latent_dataset(dir_ / "d.h5", samples);
    dataset_ = LatentDataset::open({dir_ / "d.h5"});
  }

  static SyntheticDataSpec spec(int64_t samples, int64_t width, uint64_t seed) {
    SyntheticDataSpec s;
    s.samples = samples;
    s.channels = 2;
    s.height = 4;
    s.width = width;
    s.context_len = 2;
    s.text_dim = 4;
    s.seed = seed;
    return s;
  }

  // The sampler's state as RunState holds it, and the stream it shuffles with.
  struct Position {
    explicit Position(uint64_t seed) : rng(seed) {}
    Rng rng;
    int64_t epoch = 0, cursor = 0;
    std::vector<int64_t> order;
    std::vector<int64_t> next(const BatchSampler& sampler) { return sampler.next(rng, epoch, cursor, order); }
  };

  std::vector<std::vector<int64_t>> draw(const BatchSampler& sampler, Position& position, int count) {
    std::vector<std::vector<int64_t>> batches;
    for (int i = 0; i < count; ++i) batches.push_back(position.next(sampler));
    return batches;
  }

  ScratchDir dir_;
  LatentDataset dataset_;
};

TEST_F(BatchSamplerTest, EachShapeGroupIsCutIntoBatchesKeepingThePartialOne) {
  EXPECT_EQ(BatchSampler(dataset_, kBatchSize).batches_per_epoch(), kBatches);
  EXPECT_EQ(BatchSampler(dataset_, 1).batches_per_epoch(), kSamples);
  EXPECT_EQ(BatchSampler(dataset_, 100).batches_per_epoch(), 2);
}

TEST_F(BatchSamplerTest, EverySampleExactlyOncePerEpoch) {
  const BatchSampler sampler(dataset_, kBatchSize);
  Position position(1);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen;
    for (int64_t b = 0; b < kBatches; ++b) {
      const std::vector<int64_t> batch = position.next(sampler);
      EXPECT_EQ(position.epoch, epoch);
      EXPECT_LE(static_cast<int64_t>(batch.size()), kBatchSize);
      seen.insert(seen.end(), batch.begin(), batch.end());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(kSamples);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "epoch " << epoch;
  }
}

TEST_F(BatchSamplerTest, BatchesNeverMixLatentShapes) {
  const BatchSampler sampler(dataset_, kBatchSize);
  Position position(2);
  for (const std::vector<int64_t>& batch : draw(sampler, position, 2 * kBatches))
    for (int64_t i : batch) EXPECT_EQ(dataset_.latent_shape(i), dataset_.latent_shape(batch[0]));
}

TEST_F(BatchSamplerTest, DifferentEpochsHaveDifferentOrders) {
  const BatchSampler sampler(dataset_, kBatchSize);
  Position position(3);
  std::set<std::vector<int64_t>> orders;
  for (int epoch = 0; epoch < 4; ++epoch) {
    draw(sampler, position, kBatches);
    orders.insert(position.order);
  }
  EXPECT_GE(orders.size(), 3u) << "4 epochs over 5 batches (120 orders) should rarely repeat";
}

TEST_F(BatchSamplerTest, SameSeedSameSequenceOtherSeedOtherSequence) {
  const BatchSampler sampler(dataset_, kBatchSize);
  Position a(4), b(4), c(5);
  const auto first = draw(sampler, a, 3 * kBatches);
  EXPECT_EQ(first, draw(sampler, b, 3 * kBatches));
  EXPECT_NE(first, draw(sampler, c, 3 * kBatches));
}

// Stops mid-epoch, stores the position in a RunState file, and continues from a reloaded copy
// with a fresh sampler over a reopened dataset, across the next epoch boundary.
TEST_F(BatchSamplerTest, ResumingFromASavedRunStateContinuesIdentically) {
  Position uninterrupted(6);
  const auto expected = draw(BatchSampler(dataset_, kBatchSize), uninterrupted, 13);

  Position before(6);
  const auto head = draw(BatchSampler(dataset_, kBatchSize), before, 7);
  RunState saved;
  saved.data_rng = before.rng.state();
  saved.epoch = before.epoch;
  saved.cursor = before.cursor;
  saved.order = before.order;
  saved.save(dir_ / "state");

  const RunState loaded = RunState::load(dir_ / "state");
  Position after(0);
  after.rng.set_state(loaded.data_rng);
  after.epoch = loaded.epoch;
  after.cursor = loaded.cursor;
  after.order = loaded.order;
  auto resumed = head;
  for (const auto& batch : draw(BatchSampler(LatentDataset::open({dir_ / "d.h5"}), kBatchSize), after, 6))
    resumed.push_back(batch);
  EXPECT_EQ(resumed, expected);
  EXPECT_EQ(after.epoch, uninterrupted.epoch);
  EXPECT_EQ(after.rng.state(), uninterrupted.rng.state());
}

TEST_F(BatchSamplerTest, StateFromAnotherBatchSizeIsRejected) {
  Position position(7);
  position.next(BatchSampler(dataset_, kBatchSize));
  try {
    position.next(BatchSampler(dataset_, 2));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("order of 5 batches"), HasSubstr("make 6 batches per epoch")));
  }
}

TEST_F(BatchSamplerTest, BatchSizeBelowOneIsRejected) {
  EXPECT_THROW(BatchSampler(dataset_, 0), Error);
}

// ---- collate -------------------------------------------------------------------------------

TEST(Collate, StacksLatentsInOrderAndZeroPadsContexts) {
  ScratchDir dir;
  // Contexts of 1 and 3 tokens; values 1.. and 101.. so padding zeros cannot be mistaken.
  const auto values = [](int64_t n, float start) {
    std::vector<float> v(static_cast<size_t>(n));
    std::iota(v.begin(), v.end(), start);
    return v;
  };
  write_latent_dataset(dir / "d.h5", {{Tensor::from_vector({1, 1, 1, 2}, {1, 2}), Tensor::from_vector({1, 2}, values(2, 1)), ""},
                                      {Tensor::from_vector({1, 1, 1, 2}, {3, 4}), Tensor::from_vector({3, 2}, values(6, 101)), ""}});
  const LatentDataset dataset = LatentDataset::open({dir / "d.h5"});
  const Batch batch = collate(dataset, {1, 0});
  EXPECT_EQ(batch.indices, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(batch.latents.shape(), (Shape{2, 1, 1, 1, 2}));
  EXPECT_EQ(batch.latents.to_vector(), (std::vector<float>{3, 4, 1, 2}));
  EXPECT_EQ(batch.context.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(batch.context.to_vector(), (std::vector<float>{101, 102, 103, 104, 105, 106, 1, 2, 0, 0, 0, 0}));
}

// A sample of latents [1, 1, 1, 1] whose context has `rows` rows and, when given, `mask`.
LatentSample sample_with_context(int64_t rows, const std::vector<float>& mask = {}) {
  LatentSample s{Tensor::zeros({1, 1, 1, 1}), Tensor::full({rows, 2}, 1.0f), ""};
  if (!mask.empty()) s.context_mask = Tensor::from_vector({rows}, mask);
  return s;
}

TEST(Collate, MaskMarksEachSamplesRealRowsAndTheBatchsPadding) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {sample_with_context(1), sample_with_context(4, {1, 1, 0, 0}),
                                      sample_with_context(3), sample_with_context(2, {1, 1})});
  const LatentDataset dataset = LatentDataset::open({dir / "d.h5"});
  const Batch batch = collate(dataset, {0, 1, 2, 3});
  ASSERT_EQ(batch.context_mask.shape(), (Shape{4, 4}));
  EXPECT_EQ(batch.context_mask.to_vector(), (std::vector<float>{1, 0, 0, 0,  // no mask, 1 row of 4
                                                                1, 1, 0, 0,  // its own mask
                                                                1, 1, 1, 0,  // no mask, 3 rows
                                                                1, 1, 0, 0}));  // its mask, then the batch's padding
}

TEST(Collate, MixedLengthsWithoutMasksStillGetAMask) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {sample_with_context(3), sample_with_context(1)});
  const Batch batch = collate(LatentDataset::open({dir / "d.h5"}), {1, 0});
  EXPECT_EQ(batch.context_mask.to_vector(), (std::vector<float>{1, 0, 0, 1, 1, 1}));
}

TEST(Collate, OneMaskedSampleGivesTheWholeBatchAMask) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {sample_with_context(2), sample_with_context(2, {1, 0})});
  EXPECT_EQ(collate(LatentDataset::open({dir / "d.h5"}), {0, 1}).context_mask.to_vector(),
            (std::vector<float>{1, 1, 1, 0}));
}

// Wan's datasets (one length, no masks) give the batches they gave before masks existed.
TEST(Collate, SameLengthsWithoutMasksGiveNoMask) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {sample_with_context(2), sample_with_context(2)});
  const Batch batch = collate(LatentDataset::open({dir / "d.h5"}), {0, 1});
  EXPECT_FALSE(batch.context_mask.defined());
  EXPECT_EQ(batch.context.shape(), (Shape{2, 2, 2}));
}

TEST(Collate, SamplesOfDifferentShapesAreRejected) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {{Tensor::zeros({1, 1, 1, 2}), Tensor::zeros({1, 2}), ""},
                                      {Tensor::zeros({1, 1, 2, 2}), Tensor::zeros({1, 2}), ""}});
  const LatentDataset dataset = LatentDataset::open({dir / "d.h5"});
  try {
    collate(dataset, {0, 1});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(dataset.where(1)), HasSubstr(dataset.where(0)), HasSubstr("[1, 1, 2, 2]")));
  }
}

}  // namespace
}  // namespace vdit
