// Video I/O through FFmpeg, the clip generator, the stand-in text table and make-dataset: our
// MP4s decode back close to what was encoded and other tools read them; videos written by the
// ffmpeg tool decode resized and cropped; bad files are errors naming the file; generated
// clips move as their captions say; make-dataset writes a dataset the trainer reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>

#include "autograd/check.h"
#include "data/clip_generator.h"
#include "data/latent_dataset.h"
#include "data/text_embedding_table.h"
#include "data/video_io.h"
#include "tests/fixtures.h"

extern "C" {
#include <libavcodec/avcodec.h>
}

namespace vdit {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::run_command;
using testing::ScratchDir;

constexpr const char* kFfmpeg = "/usr/bin/ffmpeg";
constexpr const char* kFfprobe = "/usr/bin/ffprobe";

#define SKIP_WITHOUT(tool) \
  if (!fs::exists(tool)) GTEST_SKIP() << tool << " is not installed"

using testing::error_of;

std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), {}};
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

double psnr(const Tensor& a, const Tensor& b) {  // peak 1
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double squared = 0.0;
  for (size_t i = 0; i < x.size(); ++i) squared += (x[i] - y[i]) * (x[i] - y[i]);
  return 10.0 * std::log10(x.size() / std::max(squared, 1e-12));
}

// Frames [k] of [3, F, H, W], as [3, 1, H, W].
Tensor frame_at(const Tensor& frames, int64_t k) {
  const int64_t count = frames.size(1), plane = frames.size(2) * frames.size(3);
  Tensor out = Tensor::empty({3, 1, frames.size(2), frames.size(3)});
  for (int64_t c = 0; c < 3; ++c)
    std::copy_n(frames.data() + (c * count + k) * plane, plane, out.data() + c * plane);
  return out;
}

// The ffmpeg tool's own test pattern (colour bars, a moving gradient, a frame counter): 6
// frames of 64x48 at 8 fps.
std::string write_testsrc(const ScratchDir& dir) {
  const std::string path = dir / "testsrc.mp4";
  const auto r = run_command(std::string(kFfmpeg) + " -v error -f lavfi -i testsrc=size=64x48:rate=8 -frames:v 6 -pix_fmt yuv420p " + path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return path;
}

TEST(VideoIo, Mp4RoundTripStaysAbove25DbPsnr) {
  const ScratchDir dir;
  const Tensor original = generate_clips(1, 6, 48, 64, 3)[0].frames;
  encode_mp4(dir / "clip.mp4", original);
  const Tensor decoded = decode_video(dir / "clip.mp4", 6, 48, 64);
  EXPECT_GT(psnr(decoded, original), 25.0);
  EXPECT_FALSE(fs::exists(dir / "clip.mp4.partial"));
}

TEST(VideoIo, FfprobeReadsOurMp4Stream) {
  SKIP_WITHOUT(kFfprobe);
  const ScratchDir dir;
  encode_mp4(dir / "clip.mp4", generate_clips(1, 5, 32, 48, 0)[0].frames, 10);
  const auto r = run_command(std::string(kFfprobe) + " -v error -select_streams v:0 -count_frames -show_entries "
                             "stream=codec_name,width,height,avg_frame_rate,nb_read_frames -of default=nw=1 " + (dir / "clip.mp4"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string codec = avcodec_find_encoder_by_name("libx264") ? "h264" : "mpeg4";
  EXPECT_THAT(r.output, AllOf(HasSubstr("codec_name=" + codec), HasSubstr("width=48"), HasSubstr("height=32"),
                              HasSubstr("avg_frame_rate=10/1"), HasSubstr("nb_read_frames=5")));
}

TEST(VideoIo, DecodesFfmpegToolVideoResizedAndCentreCropped) {
  SKIP_WITHOUT(kFfmpeg);
  const ScratchDir dir;
  const std::string video = write_testsrc(dir);
  const Tensor ours = decode_video(video, 4, 32, 32);
  ASSERT_EQ(ours.shape(), (Shape{3, 4, 32, 32}));
  // The same resize (height 48 -> 32 covers 32x32; width 64 -> 43) and centre crop (columns 5
  // to 36) by the tool, cropping in RGB: its yuv420p crop would round the offset down to even.
  const std::string raw = dir / "frames.rgb";
  const auto r = run_command(std::string(kFfmpeg) + " -v error -i " + video +
                             " -vf scale=43:32,format=rgb24,crop=32:32:5:0 -frames:v 4 -f rawvideo -pix_fmt rgb24 " + raw);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string bytes = read_bytes(raw);
  ASSERT_EQ(bytes.size(), 4u * 32 * 32 * 3);
  Tensor theirs = Tensor::empty({3, 4, 32, 32});
  for (int64_t f = 0; f < 4; ++f)
    for (int64_t p = 0; p < 32 * 32; ++p)
      for (int64_t c = 0; c < 3; ++c)
        theirs.data()[(c * 4 + f) * 1024 + p] = static_cast<uint8_t>(bytes[(f * 1024 + p) * 3 + c]) / 255.0f;
  EXPECT_GT(psnr(ours, theirs), 40.0);  // same scaler, near identical; a crop one column off scores 13 dB
}

TEST(VideoIo, StrideKeepsEveryNthFrame) {
  SKIP_WITHOUT(kFfmpeg);
  const ScratchDir dir;
  const std::string video = write_testsrc(dir);
  const Tensor all = decode_video(video, 6, 48, 64);
  const Tensor strided = decode_video(video, 3, 48, 64, 2);
  for (int64_t k = 0; k < 3; ++k)
    EXPECT_EQ(testing::max_abs_difference(frame_at(strided, k), frame_at(all, 2 * k)), 0.0) << "frame " << k;
  EXPECT_GT(testing::max_abs_difference(frame_at(all, 0), frame_at(all, 1)), 0.1);  // the frames differ
}

TEST(VideoIo, PngsHaveTheSignatureSizeAndPixels) {
  const ScratchDir dir;
  const Tensor frames = generate_clips(1, 2, 24, 40, 1)[0].frames;
  const std::vector<std::string> paths = encode_pngs(dir / "frame", frames);
  ASSERT_EQ(paths, (std::vector<std::string>{dir / "frame_000.png", dir / "frame_001.png"}));
  for (int64_t k = 0; k < 2; ++k) {
    const std::string png = read_bytes(paths[k]);
    ASSERT_GE(png.size(), 24u);
    EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
    const auto be32 = [&](size_t at) {
      return (uint8_t(png[at]) << 24) | (uint8_t(png[at + 1]) << 16) | (uint8_t(png[at + 2]) << 8) | uint8_t(png[at + 3]);
    };
    EXPECT_EQ(png.substr(12, 4), "IHDR");
    EXPECT_EQ(be32(16), 40u);  // width
    EXPECT_EQ(be32(20), 24u);  // height
    // Lossless: reading it back gives the frame to within 8-bit rounding.
    EXPECT_LE(testing::max_abs_difference(decode_video(paths[k], 1, 24, 40), frame_at(frames, k)), 0.5 / 255 + 1e-6);
  }
}

TEST(VideoIo, MissingTextAndCorruptFilesAreErrorsNamingTheFile) {
  const ScratchDir dir;
  const std::string missing = dir / "missing.mp4", text = dir / "notes.txt", corrupt = dir / "corrupt.mp4";
  write_text(text, "not a video\n");
  encode_mp4(corrupt, generate_clips(1, 4, 32, 32, 0)[0].frames);
  const std::string whole = read_bytes(corrupt);
  write_text(corrupt, whole.substr(0, whole.size() / 2));  // cut mid-stream, before the index at the end
  for (const std::string& path : {missing, text, corrupt})
    EXPECT_THAT(error_of([&] { decode_video(path, 1, 16, 16); }), HasSubstr(path + ": "));
}

TEST(VideoIo, AudioOnlyFileHasNoVideoStream) {
  SKIP_WITHOUT(kFfmpeg);
  const ScratchDir dir;
  const std::string audio = dir / "tone.wav";
  ASSERT_EQ(run_command(std::string(kFfmpeg) + " -v error -f lavfi -i sine=duration=0.1 " + audio).exit_code, 0);
  EXPECT_THAT(error_of([&] { decode_video(audio, 1, 16, 16); }), HasSubstr(audio + ": no video stream"));
}

TEST(VideoIo, AskingMoreFramesThanTheVideoHasIsAnError) {
  const ScratchDir dir;
  const std::string path = dir / "clip.mp4";
  encode_mp4(path, generate_clips(1, 4, 32, 32, 0)[0].frames);
  EXPECT_THAT(error_of([&] { decode_video(path, 3, 32, 32, 2); }), HasSubstr(path + ": has 4 frames, but 3 at stride 2 need 5"));
}

TEST(VideoIo, Mp4NeedsEvenFrameSize) {
  const ScratchDir dir;
  const std::string path = dir / "odd.mp4";
  EXPECT_THAT(error_of([&] { encode_mp4(path, Tensor::zeros({3, 2, 15, 16})); }), HasSubstr(path + ": MP4 frames need an even"));
  EXPECT_FALSE(fs::exists(path));
}

// The centroid (x, y) of the pixels of frame `f` within 0.05 of `rgb` on every channel.
std::pair<double, double> centroid_of_colour(const Tensor& frames, int64_t f, const float (&rgb)[3]) {
  const int64_t count = frames.size(1), height = frames.size(2), width = frames.size(3);
  const float* v = frames.data();
  double sx = 0, sy = 0, n = 0;
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      bool match = true;
      for (int64_t c = 0; c < 3; ++c) match &= std::fabs(v[((c * count + f) * height + y) * width + x] - rgb[c]) < 0.05f;
      if (match) sx += x, sy += y, ++n;
    }
  }
  EXPECT_GT(n, 0) << "no pixel of the shape's colour in frame " << f;
  return {sx / n, sy / n};
}

const ClipColour& colour_named(const std::string& name) {
  for (const ClipColour& c : clip_colours())
    if (c.name == name) return c;
  throw Error("no clip colour " + name);
}

TEST(ClipGenerator, RedSquareMovingRightMovesItsRedPixelsRight) {
  Rng rng(7);
  const ClipScene scene{ClipShape::Square, colour_named("red"), ClipMotion::Right};
  const Clip clip = draw_clip(scene, 4, 32, 32, rng);
  EXPECT_EQ(clip.caption, "a red square moves right");
  double previous_x = -1;
  for (int64_t f = 0; f < 4; ++f) {
    const auto [x, y] = centroid_of_colour(clip.frames, f, scene.colour.rgb);
    EXPECT_GT(x, previous_x + 1.0) << "frame " << f;
    previous_x = x;
  }
}

TEST(ClipGenerator, EveryCaptionNamesItsShapesColourAndMotion) {
  const std::vector<Clip> clips = generate_clips(24, 4, 32, 32, 11);
  for (const Clip& clip : clips) {
    std::istringstream words(clip.caption);
    std::string a, colour, shape, moves, motion;
    words >> a >> colour >> shape >> moves >> motion;
    ASSERT_EQ(a + " " + moves, "a moves") << clip.caption;
    EXPECT_THAT((std::vector<std::string>{"square", "circle", "triangle"}), ::testing::Contains(shape));
    EXPECT_EQ(clip.frames.shape(), (Shape{3, 4, 32, 32}));
    const auto [x0, y0] = centroid_of_colour(clip.frames, 0, colour_named(colour).rgb);
    const auto [x1, y1] = centroid_of_colour(clip.frames, 3, colour_named(colour).rgb);
    const double dx = x1 - x0, dy = y1 - y0;  // image y points down
    const std::string seen = std::fabs(dx) > std::fabs(dy) ? (dx > 0 ? "right" : "left") : (dy > 0 ? "down" : "up");
    EXPECT_EQ(seen, motion) << clip.caption << ": moved (" << dx << ", " << dy << ")";
    EXPECT_GT(std::max(std::fabs(dx), std::fabs(dy)), 3.0) << clip.caption;
  }
}

TEST(ClipGenerator, SameSeedSameClipsOtherSeedOthers) {
  const std::vector<Clip> a = generate_clips(3, 2, 16, 16, 5), b = generate_clips(3, 2, 16, 16, 5),
                          c = generate_clips(3, 2, 16, 16, 6);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].caption, b[i].caption);
    EXPECT_EQ(testing::max_abs_difference(a[i].frames, b[i].frames), 0.0);
    EXPECT_GT(testing::max_abs_difference(a[i].frames, c[i].frames), 0.1);
  }
}

// The row of `context` for word `i`.
std::vector<float> row(const Tensor& context, int64_t i) {
  const int64_t d = context.size(1);
  return {context.data() + i * d, context.data() + (i + 1) * d};
}

TEST(TextEmbedding, OneRowPerLowerCasedWordSameWordSameRow) {
  const Tensor a = embed_caption("a red square moves left", 16, 8);
  const Tensor b = embed_caption("A  Red, square moves RIGHT.", 16, 8);
  ASSERT_EQ(a.shape(), (Shape{5, 16}));
  ASSERT_EQ(b.shape(), (Shape{5, 16}));
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(row(a, i), row(b, i)) << "word " << i;
  EXPECT_NE(row(a, 4), row(b, 4));  // left, right
  EXPECT_NE(row(a, 1), row(a, 2));  // red, square
  EXPECT_EQ(testing::max_abs_difference(a, embed_caption("a red square moves left", 16, 8)), 0.0);
}

TEST(TextEmbedding, TextLenCapsTheRowsAndTheSeedChangesTheTable) {
  EXPECT_EQ(embed_caption("one two three four", 8, 3).shape(), (Shape{3, 8}));
  EXPECT_EQ(embed_caption("", 8, 3).shape(), (Shape{0, 8}));
  EXPECT_NE(row(embed_caption("word", 8, 3, 0), 0), row(embed_caption("word", 8, 3, 1), 0));
}

TEST(MakeDataset, GeneratedClipsBecomeAPixelSpaceDataset) {
  const ScratchDir dir;
  const auto r = testing::run_vditkit("make-dataset --generate 4 --frames 4 --size 32x32 --text-dim 24 --out " +
                                      (dir / "clips.h5") + " --export-mp4 " + (dir / "mp4"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const LatentDataset data = LatentDataset::open({dir / "clips.h5"});
  ASSERT_EQ(data.size(), 4);
  const std::vector<Clip> clips = generate_clips(4, 4, 32, 32, 0);  // --seed 0
  for (int64_t i = 0; i < 4; ++i) {
    const LatentSample s = data.read(i);
    ASSERT_EQ(s.latents.shape(), (Shape{3, 4, 32, 32}));
    EXPECT_LE(testing::max_abs(s.latents), 1.0);
    EXPECT_GT(testing::max_abs(s.latents), 0.5);  // the scaled colours reach out towards -1 and 1
    EXPECT_EQ(s.prompt, clips[i].caption);
    EXPECT_EQ(testing::max_abs_difference(s.context, embed_caption(s.prompt, 24, 16)), 0.0);
    char mp4[32];
    std::snprintf(mp4, sizeof mp4, "mp4/clip_%06lld.mp4", static_cast<long long>(i));
    EXPECT_TRUE(fs::exists(dir / mp4)) << mp4;
  }
}

TEST(MakeDataset, VideosAreCaptionedByTheirSidecars) {
  SKIP_WITHOUT(kFfmpeg);
  const ScratchDir dir;
  fs::create_directories(dir / "videos");
  fs::rename(write_testsrc(dir), dir / "videos/bars.mp4");
  write_text(dir / "videos/bars.txt", "  Colour bars scroll\n");
  const auto r = testing::run_vditkit("make-dataset --videos " + (dir / "videos") + " --frames 3 --stride 2 --size 16x24 --out " +
                                      (dir / "bars.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const LatentSample s = LatentDataset::open({dir / "bars.h5"}).read(0);
  EXPECT_EQ(s.prompt, "Colour bars scroll");
  EXPECT_EQ(s.latents.shape(), (Shape{3, 3, 16, 24}));
  EXPECT_EQ(s.context.shape(), (Shape{3, 64}));

  fs::remove(dir / "videos/bars.txt");
  const auto missing = testing::run_vditkit("make-dataset --videos " + (dir / "videos") + " --frames 3 --size 16x24 --out " +
                                            (dir / "none.h5"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("bars.mp4: no caption (expected " + (dir / "videos/bars.txt")));
}

}  // namespace
}  // namespace vdit
