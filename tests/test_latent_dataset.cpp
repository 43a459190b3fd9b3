// The latent dataset: samples round-trip through files in file-then-group order, context masks
// with them; every bad file or mask is an error naming the file and the group (and a mask's
// first bad index); make-dataset pads contexts to a fixed length behind a mask; and the
// synthetic generator is deterministic and gives each code its own latents and context.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include <hdf5.h>

#include "autograd/check.h"
#include "data/clip_generator.h"
#include "data/hdf5_file.h"
#include "data/latent_dataset.h"
#include "data/synthetic_data.h"
#include "data/text_embedding_table.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScratchDir;

// Values start, start + 1, ...: every element of every sample distinct and checkable.
Tensor ramp(const Shape& shape, float start) {
  std::vector<float> values(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = start + static_cast<float>(i);
  return Tensor::from_vector(shape, values);
}

LatentSample ramp_sample(const Shape& latents, int64_t context_len, float start, const std::string& prompt = "") {
  return {ramp(latents, start), ramp({context_len, 3}, -start), prompt};
}

using testing::error_of;

std::string open_error(const std::string& path) {
  return error_of([&] { LatentDataset::open({path}); });
}

// A file whose groups hold arrays of the given shapes (an empty shape writes no array).
struct GroupArrays {
  std::string group;
  Shape latents;
  Shape context;
};
void write_groups(const std::string& path, const std::vector<GroupArrays>& groups) {
  Hdf5File file(path, Hdf5File::Mode::Create);
  for (const GroupArrays& g : groups) {
    if (!g.latents.empty()) file.write(g.group + "/latents", Tensor::zeros(g.latents));
    if (!g.context.empty()) file.write(g.group + "/context", Tensor::zeros(g.context));
  }
}

std::vector<std::string> locations(const LatentDataset& dataset) {
  std::vector<std::string> where;
  for (int64_t i = 0; i < dataset.size(); ++i) where.push_back(dataset.where(i));
  return where;
}

TEST(LatentDataset, RoundTripKeepsShapesValuesAndPrompts) {
  ScratchDir dir;
  const std::vector<LatentSample> samples = {ramp_sample({4, 1, 2, 3}, 2, 0.0f, "a red fox"),
                                             ramp_sample({4, 3, 2, 2}, 5, 100.0f),
                                             ramp_sample({4, 1, 2, 3}, 1, 200.0f, "snow")};
  write_latent_dataset(dir / "d.h5", samples);
  const LatentDataset dataset = LatentDataset::open({dir / "d.h5"});
  ASSERT_EQ(dataset.size(), 3);
  for (int64_t i = 0; i < 3; ++i) {
    const LatentSample& expected = samples[static_cast<size_t>(i)];
    EXPECT_EQ(dataset.latent_shape(i), expected.latents.shape());
    EXPECT_EQ(dataset.context_shape(i), expected.context.shape());
    const LatentSample read = dataset.read(i);
    EXPECT_EQ(read.latents.to_vector(), expected.latents.to_vector());
    EXPECT_EQ(read.context.to_vector(), expected.context.to_vector());
    EXPECT_EQ(read.prompt, expected.prompt);
  }
  EXPECT_EQ(dataset.where(1), dir / "d.h5" + ":/sample_000001");
}

TEST(LatentDataset, WritingLeavesOnlyTheFinishedFile) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {ramp_sample({1, 1, 1, 1}, 1, 0.0f)});
  EXPECT_TRUE(fs::exists(dir / "d.h5"));
  EXPECT_FALSE(fs::exists(dir / "d.h5.partial"));
  const std::vector<LatentSample> bad = {ramp_sample({1, 1, 1, 1}, 1, 0.0f), {ramp({2, 2, 2}, 0.0f), ramp({1, 3}, 0.0f), ""}};
  EXPECT_THAT(error_of([&] { write_latent_dataset(dir / "d.h5", bad); }),
              AllOf(HasSubstr(dir / "d.h5"), HasSubstr("sample 1 needs latents [C, F, H, W]")));
  EXPECT_FALSE(fs::exists(dir / "d.h5.partial"));
  EXPECT_EQ(LatentDataset::open({dir / "d.h5"}).size(), 1) << "a failed write must not touch the old file";
}

TEST(LatentDataset, SamplesAreOrderedByFileAsGivenThenGroupName) {
  ScratchDir dir;
  write_groups(dir / "b.h5", {{"zeta", {2, 1, 1, 1}, {1, 3}}, {"alpha", {2, 1, 1, 1}, {1, 3}}});
  write_latent_dataset(dir / "a.h5", {ramp_sample({2, 1, 1, 1}, 1, 0.0f), ramp_sample({2, 1, 1, 1}, 1, 9.0f)});
  const LatentDataset dataset = LatentDataset::open({dir / "b.h5", dir / "a.h5"});
  EXPECT_THAT(locations(dataset), ElementsAre(dir / "b.h5:/alpha", dir / "b.h5:/zeta", dir / "a.h5:/sample_000000",
                                              dir / "a.h5:/sample_000001"));
  EXPECT_EQ(dataset.read(3).latents.to_vector(), (std::vector<float>{9.0f, 10.0f}));
}

TEST(LatentDataset, DirectoryOpensItsH5FilesInNameOrder) {
  ScratchDir dir;
  fs::create_directories(dir / "set");
  write_latent_dataset(dir / "set/b.h5", {ramp_sample({2, 1, 1, 1}, 1, 0.0f)});
  write_latent_dataset(dir / "set/a.h5", {ramp_sample({2, 1, 1, 1}, 1, 0.0f), ramp_sample({2, 1, 1, 1}, 1, 0.0f)});
  std::ofstream(dir / "set/notes.txt") << "not data";
  write_latent_dataset(dir / "extra.h5", {ramp_sample({2, 1, 1, 1}, 1, 0.0f)});
  const LatentDataset dataset = LatentDataset::open({dir / "set", dir / "extra.h5"});
  EXPECT_THAT(locations(dataset), ElementsAre(dir / "set/a.h5:/sample_000000", dir / "set/a.h5:/sample_000001",
                                              dir / "set/b.h5:/sample_000000", dir / "extra.h5:/sample_000000"));
}

TEST(LatentDataset, ReadingAFileChangedSinceOpeningIsAnError) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {ramp_sample({2, 1, 2, 2}, 1, 0.0f)});
  const LatentDataset dataset = LatentDataset::open({dir / "d.h5"});
  write_latent_dataset(dir / "d.h5", {ramp_sample({2, 1, 4, 4}, 1, 0.0f)});
  EXPECT_THAT(error_of([&] { dataset.read(0); }), AllOf(HasSubstr(dir / "d.h5:/sample_000000"), HasSubstr("changed")));
  EXPECT_THAT(error_of([&] { dataset.read(1); }), HasSubstr("sample 1 is out of range"));
}

// ---- context masks -------------------------------------------------------------------------

LatentSample masked_sample(int64_t context_len, const std::vector<float>& mask, float start) {
  LatentSample s = ramp_sample({2, 1, 1, 2}, context_len, start);
  s.context_mask = Tensor::from_vector({static_cast<int64_t>(mask.size())}, mask);
  return s;
}

TEST(ContextMask, RoundTripKeepsMasksAndLeavesUnmaskedSamplesUnmasked) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {masked_sample(4, {1, 1, 0, 0}, 0.0f), ramp_sample({2, 1, 1, 2}, 3, 10.0f),
                                      masked_sample(2, {1, 1}, 20.0f)});
  const LatentDataset dataset = LatentDataset::open({dir / "d.h5"});
  EXPECT_TRUE(dataset.has_context_mask(0));
  EXPECT_FALSE(dataset.has_context_mask(1));
  EXPECT_EQ(dataset.read(0).context_mask.to_vector(), (std::vector<float>{1, 1, 0, 0}));
  EXPECT_EQ(dataset.read(0).context.to_vector(), ramp({4, 3}, 0.0f).to_vector());
  EXPECT_FALSE(dataset.read(1).context_mask.defined());
  EXPECT_EQ(dataset.read(2).context_mask.to_vector(), (std::vector<float>{1, 1}));
}

// h5py writes a mask built from integers (np.int64) as an integer dataset.
TEST(ContextMask, IntegerMasksReadAsZerosAndOnes) {
  ScratchDir dir;
  write_latent_dataset(dir / "d.h5", {ramp_sample({2, 1, 1, 2}, 3, 0.0f)});
  const hid_t file = H5Fopen((dir / "d.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hsize_t rows = 3;
  const hid_t space = H5Screate_simple(1, &rows, nullptr);
  const hid_t d = H5Dcreate2(file, "/sample_000000/context_mask", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
  const int64_t mask[3] = {1, 1, 0};
  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask);
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(file);
  EXPECT_EQ(LatentDataset::open({dir / "d.h5"}).read(0).context_mask.to_vector(), (std::vector<float>{1, 1, 0}));
}

// A file with one sample whose context has `rows` rows and whose mask holds `mask` (written as
// is, past the writer's own check).
std::string file_with_mask(const ScratchDir& dir, int64_t rows, const std::vector<float>& mask) {
  const std::string path = dir / "m.h5";
  Hdf5File file(path, Hdf5File::Mode::Create);
  file.write("s0/latents", Tensor::zeros({2, 1, 1, 1}));
  file.write("s0/context", Tensor::zeros({rows, 3}));
  file.write("s0/context_mask", Tensor::from_vector({static_cast<int64_t>(mask.size())}, mask));
  return path;
}

std::string read_error(const std::string& path) {
  return error_of([&] { LatentDataset::open({path}).read(0); });
}

TEST(ContextMaskErrors, LengthOtherThanTheContextsRowsNamesBoth) {
  ScratchDir dir;
  EXPECT_EQ(open_error(file_with_mask(dir, 4, {1, 1, 0})),
            dir / "m.h5" + ":/s0/context_mask has shape [3], but its context has 4 rows");
}

TEST(ContextMaskErrors, ValueOtherThanZeroOrOneNamesItsIndex) {
  ScratchDir dir;
  EXPECT_EQ(read_error(file_with_mask(dir, 3, {1, 2, 0})),
            dir / "m.h5" + ":/s0/context_mask holds 2 at index [1], expected 1 (a real token) or 0 (padding)");
  EXPECT_THAT(read_error(file_with_mask(dir, 2, {1, NAN})), HasSubstr("context_mask holds nan at index [1]"));
}

TEST(ContextMaskErrors, RealTokenAfterPaddingNamesItsIndex) {
  ScratchDir dir;
  EXPECT_EQ(read_error(file_with_mask(dir, 4, {1, 0, 1, 0})),
            dir / "m.h5" + ":/s0/context_mask holds 1 at index [2] after padding at index [1]: real tokens come first");
}

TEST(ContextMaskErrors, AllPaddingIsAnError) {
  ScratchDir dir;
  EXPECT_EQ(read_error(file_with_mask(dir, 3, {0, 0, 0})),
            dir / "m.h5" + ":/s0/context_mask holds no real token (index [0] is padding): a context needs at least one");
}

TEST(ContextMaskErrors, WriterRejectsABadMaskAndKeepsNoFile) {
  ScratchDir dir;
  EXPECT_EQ(error_of([&] { write_latent_dataset(dir / "d.h5", {masked_sample(3, {0, 1, 1}, 0.0f)}); }),
            dir / "d.h5" + ":/sample_000000/context_mask holds 1 at index [1] after padding at index [0]: real tokens "
                           "come first");
  EXPECT_FALSE(fs::exists(dir / "d.h5"));
  EXPECT_THAT(error_of([&] { write_latent_dataset(dir / "d.h5", {masked_sample(3, {1, 1}, 0.0f)}); }),
              HasSubstr("context_mask has shape [2], but its context has 3 rows"));
}

TEST(PadContext, AddsZeroRowsMarkedAsPadding) {
  LatentSample s = ramp_sample({1, 1, 1, 1}, 2, 5.0f);  // context rows [-5, -4, -3], [-2, -1, 0]
  pad_context(s, 4);
  EXPECT_EQ(s.context.shape(), (Shape{4, 3}));
  EXPECT_EQ(s.context.to_vector(), (std::vector<float>{-5, -4, -3, -2, -1, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(s.context_mask.to_vector(), (std::vector<float>{1, 1, 0, 0}));
  LatentSample masked = masked_sample(2, {1, 0}, 0.0f);
  pad_context(masked, 3);
  EXPECT_EQ(masked.context_mask.to_vector(), (std::vector<float>{1, 0, 0})) << "padding already there stays padding";
  EXPECT_EQ(error_of([&] { pad_context(s, 3); }), "a context of 4 rows cannot be padded to 3");
}

// CogVideoX takes exactly max_text_seq_length context rows: make-dataset pads the word rows.
TEST(MakeDatasetPadding, PadContextToWritesZeroRowsAndTheirMask) {
  ScratchDir dir;
  const auto r = testing::run_vditkit("make-dataset --generate 3 --frames 1 --size 8x8 --text-dim 5 --text-len 8 "
                                      "--pad-context-to 10 --out " + (dir / "d.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("context [10, 5] (a context_mask marks its <= 8 word rows)"));
  const LatentDataset data = LatentDataset::open({dir / "d.h5"});
  const std::vector<Clip> clips = generate_clips(3, 1, 8, 8, 0);
  for (int64_t i = 0; i < 3; ++i) {
    const LatentSample s = data.read(i);
    const Tensor words = embed_caption(clips[i].caption, 5, 8);
    const int64_t real = words.size(0);
    ASSERT_GT(real, 1);
    ASSERT_LT(real, 8) << "the mask should mark words, not --text-len";
    ASSERT_EQ(s.context.shape(), (Shape{10, 5}));
    std::vector<float> expected_context(50, 0.0f), expected_mask(10, 0.0f);
    const std::vector<float> word_rows = words.to_vector();
    std::copy(word_rows.begin(), word_rows.end(), expected_context.begin());
    std::fill_n(expected_mask.begin(), real, 1.0f);
    EXPECT_EQ(s.context.to_vector(), expected_context) << "sample " << i;
    EXPECT_EQ(s.context_mask.to_vector(), expected_mask) << "sample " << i << ": " << real << " words";
  }
  const auto unpadded = testing::run_vditkit("make-dataset --generate 1 --frames 1 --size 8x8 --out " + (dir / "u.h5"));
  ASSERT_EQ(unpadded.exit_code, 0) << unpadded.output;
  EXPECT_FALSE(LatentDataset::open({dir / "u.h5"}).has_context_mask(0)) << "no mask unless asked";
  const auto short_pad = testing::run_vditkit("make-dataset --generate 1 --frames 1 --size 8x8 --text-len 4 "
                                              "--pad-context-to 3 --out " + (dir / "s.h5"));
  EXPECT_NE(short_pad.exit_code, 0);
  EXPECT_THAT(short_pad.output, HasSubstr("--pad-context-to 3 is less than --text-len 4"));
}

// ---- bad files: each error names the file and the group ------------------------------------

TEST(LatentDatasetErrors, NonFiniteValuesAreNamedBySampleArrayAndIndex) {
  ScratchDir dir;
  std::vector<LatentSample> samples = {ramp_sample({2, 1, 2, 2}, 2, 0.0f), ramp_sample({2, 1, 2, 2}, 2, 10.0f)};
  samples[1].latents.data()[5] = NAN;     // [1, 0, 0, 1]
  samples[0].context.data()[4] = INFINITY;  // [1, 1]
  write_latent_dataset(dir / "d.h5", samples);
  const LatentDataset data = LatentDataset::open({dir / "d.h5"});
  EXPECT_EQ(error_of([&] { data.read(1); }), dir / "d.h5" + ":/sample_000001/latents holds nan at index [1, 0, 0, 1]");
  EXPECT_EQ(error_of([&] { data.read(0); }), dir / "d.h5" + ":/sample_000000/context holds inf at index [1, 1]");
}

TEST(LatentDatasetErrors, GroupWithoutLatents) {
  ScratchDir dir;
  write_groups(dir / "d.h5", {{"s0", {2, 1, 1, 1}, {1, 3}}, {"s1", {}, {1, 3}}});
  EXPECT_THAT(open_error(dir / "d.h5"), AllOf(HasSubstr(dir / "d.h5:/s1"), HasSubstr("no dataset 'latents'")));
}

TEST(LatentDatasetErrors, GroupWithoutContext) {
  ScratchDir dir;
  write_groups(dir / "d.h5", {{"s0", {2, 1, 1, 1}, {}}});
  EXPECT_THAT(open_error(dir / "d.h5"), AllOf(HasSubstr(dir / "d.h5:/s0"), HasSubstr("no dataset 'context'")));
}

TEST(LatentDatasetErrors, ThreeDimensionalLatents) {
  ScratchDir dir;
  write_groups(dir / "d.h5", {{"s0", {2, 4, 4}, {1, 3}}});
  EXPECT_THAT(open_error(dir / "d.h5"),
              AllOf(HasSubstr(dir / "d.h5:/s0"), HasSubstr("'latents' has shape [2, 4, 4]"), HasSubstr("[C, F, H, W]")));
}

TEST(LatentDatasetErrors, EmptyContext) {
  ScratchDir dir;
  write_groups(dir / "d.h5", {{"s0", {2, 1, 1, 1}, {0, 3}}});
  EXPECT_THAT(open_error(dir / "d.h5"), AllOf(HasSubstr(dir / "d.h5:/s0"), HasSubstr("'context' has shape [0, 3]")));
}

TEST(LatentDatasetErrors, ChannelMismatchNamesBothSamples) {
  ScratchDir dir;
  write_groups(dir / "a.h5", {{"s0", {4, 1, 1, 1}, {1, 3}}});
  write_groups(dir / "b.h5", {{"s0", {4, 1, 1, 1}, {1, 3}}, {"s1", {8, 1, 1, 1}, {1, 3}}});
  EXPECT_THAT(error_of([&] { LatentDataset::open({dir / "a.h5", dir / "b.h5"}); }),
              AllOf(HasSubstr(dir / "b.h5:/s1: latent channels 8"), HasSubstr(dir / "a.h5:/s0 has 4")));
}

TEST(LatentDatasetErrors, TextWidthMismatchNamesBothSamples) {
  ScratchDir dir;
  write_groups(dir / "d.h5", {{"s0", {4, 1, 1, 1}, {2, 3}}, {"s1", {4, 1, 1, 1}, {2, 5}}});
  EXPECT_THAT(open_error(dir / "d.h5"),
              AllOf(HasSubstr(dir / "d.h5:/s1: context width (text_dim) 5"), HasSubstr(dir / "d.h5:/s0 has 3")));
}

TEST(LatentDatasetErrors, FileWithoutSampleGroups) {
  ScratchDir dir;
  Hdf5File(dir / "d.h5", Hdf5File::Mode::Create).write("latents", Tensor::zeros({4, 1, 1, 1}));
  EXPECT_THAT(open_error(dir / "d.h5"), AllOf(HasSubstr(dir / "d.h5"), HasSubstr("no samples")));
}

TEST(LatentDatasetErrors, NotAnHdf5File) {
  ScratchDir dir;
  std::ofstream(dir / "d.h5") << "latents";
  EXPECT_THAT(open_error(dir / "d.h5"), AllOf(HasSubstr(dir / "d.h5"), HasSubstr("not a readable HDF5 file")));
}

TEST(LatentDatasetErrors, MissingPathAndDirectoryWithoutH5Files) {
  ScratchDir dir;
  EXPECT_THAT(open_error(dir / "absent.h5"), AllOf(HasSubstr(dir / "absent.h5"), HasSubstr("no such file")));
  EXPECT_THAT(open_error(dir.path().string()), HasSubstr("holds no .h5 files"));
  EXPECT_THAT(error_of([] { LatentDataset::open({}); }), HasSubstr("no dataset files"));
}

// ---- synthetic data ------------------------------------------------------------------------

SyntheticDataSpec small_spec(uint64_t seed) {
  SyntheticDataSpec spec;
  spec.samples = 12;
  spec.channels = 4;
  spec.frames = 2;
  spec.height = 6;
  spec.width = 8;
  spec.context_len = 3;
  spec.text_dim = 16;
  spec.seed = seed;
  return spec;
}

// Root mean square of a - b.
double rms_difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]);
  return std::sqrt(sum / static_cast<double>(x.size()));
}

double rms(const Tensor& t) { return rms_difference(t, Tensor::zeros(t.shape())); }

TEST(SyntheticData, ShapesFollowTheSpec) {
  const std::vector<LatentSample> samples = make_synthetic_samples(small_spec(1));
  ASSERT_EQ(samples.size(), 12u);
  for (const LatentSample& s : samples) {
    EXPECT_EQ(s.latents.shape(), (Shape{4, 2, 6, 8}));
    EXPECT_EQ(s.context.shape(), (Shape{3, 16}));
    EXPECT_THAT(s.prompt, HasSubstr("synthetic code"));
  }
}

TEST(SyntheticData, SameSeedSameSamplesOtherSeedOtherSamples) {
  const std::vector<LatentSample> a = make_synthetic_samples(small_spec(1));
  const std::vector<LatentSample> b = make_synthetic_samples(small_spec(1));
  const std::vector<LatentSample> c = make_synthetic_samples(small_spec(2));
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].latents.to_vector(), b[i].latents.to_vector());
    EXPECT_EQ(a[i].context.to_vector(), b[i].context.to_vector());
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    EXPECT_GT(rms_difference(a[i].latents, c[i].latents), 0.1);
  }
}

TEST(SyntheticData, ValuesAreOfOrderOne) {
  for (const LatentSample& s : make_synthetic_samples(small_spec(3))) {
    EXPECT_GT(rms(s.latents), 0.05);
    EXPECT_LT(testing::max_abs(s.latents), 4.0);
    EXPECT_GT(rms(s.context), 0.05);
    EXPECT_LT(testing::max_abs(s.context), 8.0);
  }
}

// Every pair of codes differs by O(1), so latents and context (whose noise is 0.05) must too:
// the context tells the samples apart, and what it tells matters for the latents.
TEST(SyntheticData, EachCodeGivesItsOwnLatentsAndContext) {
  const std::vector<LatentSample> samples = make_synthetic_samples(small_spec(4));
  for (size_t i = 0; i < samples.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      EXPECT_GT(rms_difference(samples[i].latents, samples[j].latents), 0.1) << i << " vs " << j;
      EXPECT_GT(rms_difference(samples[i].context, samples[j].context), 0.2) << i << " vs " << j;
    }
}

TEST(SyntheticData, PatternsVaryOverFramesHeightAndWidth) {
  const Tensor x = make_synthetic_samples(small_spec(5))[0].latents;  // [4, 2, 6, 8]
  const float* v = x.data();
  double along_f = 0.0, along_h = 0.0, along_w = 0.0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t w = i % 8, h = (i / 8) % 6, f = (i / 48) % 2;
    if (f == 0) along_f += std::fabs(v[i + 48] - v[i]);
    if (h + 1 < 6) along_h += std::fabs(v[i + 8] - v[i]);
    if (w + 1 < 8) along_w += std::fabs(v[i + 1] - v[i]);
  }
  EXPECT_GT(along_f, 1.0);
  EXPECT_GT(along_h, 1.0);
  EXPECT_GT(along_w, 1.0);
}

TEST(SyntheticData, SamplesRoundTripThroughADatasetFile) {
  ScratchDir dir;
  const std::vector<LatentSample> samples = make_synthetic_samples(small_spec(6));
  write_latent_dataset(dir / "synthetic.h5", samples);
  const LatentDataset dataset = LatentDataset::open({dir / "synthetic.h5"});
  ASSERT_EQ(dataset.size(), 12);
  EXPECT_EQ(dataset.read(11).context.to_vector(), samples[11].context.to_vector());
  EXPECT_EQ(dataset.read(11).prompt, samples[11].prompt);
}

TEST(SyntheticData, EmptySizesAreRejected) {
  SyntheticDataSpec spec = small_spec(0);
  spec.height = 0;
  EXPECT_THAT(error_of([&] { make_synthetic_samples(spec); }), HasSubstr("at least 1"));
}

}  // namespace
}  // namespace vdit
