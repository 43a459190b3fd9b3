// The outputs of a diagnosis (diagnostics/diagnostics_report.cpp, thresholds.cpp, png.cpp,
// heatmap.cpp, report_html.cpp): diagnostics.h5 round-trips every number; thresholds give
// per-block verdicts whose reasons name metric, head and timestep; blocks rank worst first;
// PNGs decode (by an independent decoder in Python) to the pixels written; report.html
// references pictures that exist and, where Chromium is installed, renders to a non-blank page.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "autograd/check.h"
#include "diagnostics/diagnostics_report.h"
#include "diagnostics/heatmap.h"
#include "diagnostics/png.h"
#include "diagnostics/report_html.h"
#include "diagnostics/thresholds.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using testing::CommandResult;
using testing::run_command;
using testing::ScratchDir;

constexpr int64_t kT = 2, kB = 3, kH = 2, kF = 2;

// Distinct values in [0, 1) so that any reordering on disk shows.
std::vector<double> distinct_values(size_t n, size_t seed) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<double>((i * 37 + seed * 11) % 101) / 101.0;
  return v;
}

// A diagnosis whose every number is distinct (for the round trip); cross-attention pooled maps
// are 4 x 2 as they are with fewer text tokens than pooled rows.
DiagnosticsReport distinct_report() {
  DiagnosticsReport r;
  r.sigmas = {0.9, 0.5};
  r.blocks = kB;
  r.heads = kH;
  r.frames = kF;
  r.probe_samples = 2;
  r.model = "model <test> & \"friends\"";
  const size_t tbh = kT * kB * kH;
  size_t seed = 0;
  for (AttentionKindReport* k : {&r.self_attn, &r.cross_attn}) {
    const bool self = k == &r.self_attn;
    for (const HeadMetric& m : head_metrics())
      if (self || !m.self_only) k->*m.values = distinct_values(tbh, ++seed);
    k->sparsify_error = distinct_values(kT * kB, ++seed);
    if (self) k->frame_distance_mass = distinct_values(tbh * kF, ++seed);
    k->pooled_size = 4;
    for (size_t i = 0; i < tbh; ++i) {
      k->sink_keys.push_back(std::vector<int64_t>(i % 3, static_cast<int64_t>(100 + i)));  // 0 to 2 keys
      k->sink_positions.push_back(self ? "(0," + std::to_string(i) + ",1)" : "text " + std::to_string(i));
      k->pooled_maps.push_back(distinct_values(self ? 16 : 8, ++seed));
      k->sink_value_norm.push_back(distinct_values(k->sink_keys.back().size(), ++seed));
    }
    (self ? k->sink_first_frame : k->first_key_mass) = distinct_values(tbh, ++seed);
  }
  r.self_attn.structure_correlation[3] = NAN;  // constant maps have no correlation
  return r;
}

// Every head attends broadly: nothing a default check objects to.
DiagnosticsReport healthy_report() {
  DiagnosticsReport r = distinct_report();
  for (AttentionKindReport* k : {&r.self_attn, &r.cross_attn}) {
    std::fill(k->entropy.begin(), k->entropy.end(), 0.7);
    std::fill(k->sink_mass.begin(), k->sink_mass.end(), 0.05);
    std::fill(k->top1_over_threshold.begin(), k->top1_over_threshold.end(), 0.0);
    std::fill(k->keys_for_90.begin(), k->keys_for_90.end(), 0.3);
    std::fill(k->sparsify_error.begin(), k->sparsify_error.end(), 0.05);
  }
  return r;
}

void expect_same_values(const std::vector<double>& read, const std::vector<double>& written, const std::string& what) {
  ASSERT_EQ(read.size(), written.size()) << what;
  for (size_t i = 0; i < read.size(); ++i) {
    if (std::isnan(written[i])) {
      EXPECT_TRUE(std::isnan(read[i])) << what << "[" << i << "]";
    } else {
      EXPECT_NEAR(read[i], written[i], 1e-6) << what << "[" << i << "]";  // float32 on disk
    }
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DiagnosticsReportTest, TopSinkIsStableWhenTheSameKeyLeadsAtEveryTimestep) {
  DiagnosticsReport r = distinct_report();
  auto& keys = r.self_attn.sink_keys;
  keys[r.index(0, 0, 0)] = {7, 1};
  keys[r.index(1, 0, 0)] = {7, 2};  // same top key, others differ: stable
  keys[r.index(0, 0, 1)] = {7};
  keys[r.index(1, 0, 1)] = {8};     // moved
  keys[r.index(0, 1, 0)] = {};      // unknown
  keys[r.index(1, 1, 0)] = {3};
  const std::vector<int> stable = top_sink_stable(r, r.self_attn);
  EXPECT_EQ(stable[0 * kH + 0], 1);
  EXPECT_EQ(stable[0 * kH + 1], 0);
  EXPECT_EQ(stable[1 * kH + 0], -1);
}

TEST(DiagnosticsReportTest, Hdf5RoundTripKeepsEveryNumber) {
  ScratchDir dir;
  const DiagnosticsReport written = distinct_report();
  write_diagnostics_h5(dir / "diagnostics.h5", written);
  const DiagnosticsReport read = read_diagnostics_h5(dir / "diagnostics.h5");
  EXPECT_EQ(read.sigmas, written.sigmas);
  EXPECT_EQ(read.model, written.model);
  EXPECT_EQ(read.probe_samples, written.probe_samples);
  EXPECT_EQ(std::tie(read.blocks, read.heads, read.frames), std::tie(written.blocks, written.heads, written.frames));
  for (const ReportKind& kind : report_kinds()) {
    const AttentionKindReport &r = read.*kind.member, &w = written.*kind.member;
    const std::string name = kind.name;
    for (const HeadMetric& m : head_metrics()) expect_same_values(r.*m.values, w.*m.values, name + "." + m.name);
    expect_same_values(r.sparsify_error, w.sparsify_error, name + ".sparsify_error");
    expect_same_values(r.frame_distance_mass, w.frame_distance_mass, name + ".frame_distance_mass");
    EXPECT_EQ(r.sink_keys, w.sink_keys) << name;
    EXPECT_EQ(r.sink_positions, w.sink_positions) << name;
    ASSERT_EQ(r.sink_value_norm.size(), w.sink_value_norm.size()) << name;
    for (size_t i = 0; i < w.sink_value_norm.size(); ++i)
      expect_same_values(r.sink_value_norm[i], w.sink_value_norm[i], name + ".sink_value_norm");
    expect_same_values(r.sink_first_frame, w.sink_first_frame, name + ".sink_first_frame");
    expect_same_values(r.first_key_mass, w.first_key_mass, name + ".first_key_mass");
    EXPECT_EQ(r.pooled_size, w.pooled_size) << name;
    ASSERT_EQ(r.pooled_maps.size(), w.pooled_maps.size()) << name;
    for (size_t i = 0; i < w.pooled_maps.size(); ++i)
      expect_same_values(r.pooled_maps[i], w.pooled_maps[i], name + ".pooled_maps");
  }
}

TEST(DiagnosticsReportTest, InconsistentSizesAreRefusedNamingTheField) {
  ScratchDir dir;
  DiagnosticsReport r = distinct_report();
  r.cross_attn.keys_for_95.pop_back();
  const std::string message = error_of([&] { write_diagnostics_h5(dir / "d.h5", r); });
  EXPECT_NE(message.find("cross_attn.keys_for_95 has 11 entries, expected 12"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(dir / "d.h5"));
}

TEST(DiagnosticsReportTest, HealthyReportPassesTheDefaults) {
  for (const BlockVerdict& v : check_thresholds(healthy_report(), Thresholds::defaults())) {
    EXPECT_EQ(v.verdict, Verdict::Pass) << "block " << v.block;
    EXPECT_TRUE(v.reasons.empty()) << v.reasons.front();
  }
}

TEST(DiagnosticsReportTest, BlockWithASinkFailsNamingMetricHeadAndTimestep) {
  DiagnosticsReport r = healthy_report();
  r.self_attn.sink_mass[r.index(1, 1, 1)] = 0.9;  // block 1, head 1, sigma 0.5
  r.self_attn.sink_mass[r.index(0, 1, 0)] = 0.4;  // beyond warn only
  r.cross_attn.entropy[r.index(0, 2, 0)] = 0.08;  // block 2: a warning
  const std::vector<BlockVerdict> verdicts = check_thresholds(r, Thresholds::defaults());
  ASSERT_EQ(verdicts.size(), 3u);
  EXPECT_EQ(verdicts[0].verdict, Verdict::Pass);
  EXPECT_EQ(verdicts[1].verdict, Verdict::Fail);
  ASSERT_EQ(verdicts[1].reasons.size(), 1u);
  EXPECT_EQ(verdicts[1].reasons[0],
            "self_attn.sink_mass 0.9 above the fail limit 0.6 at head 1, sigma 0.5 (timestep 1); 2 of 4 "
            "head-timesteps beyond warn 0.3");
  EXPECT_EQ(verdicts[2].verdict, Verdict::Warn);
  ASSERT_EQ(verdicts[2].reasons.size(), 1u);
  EXPECT_NE(verdicts[2].reasons[0].find("cross_attn.entropy 0.08 below the warn limit 0.1 at head 0, sigma 0.9"),
            std::string::npos)
      << verdicts[2].reasons[0];
}

TEST(DiagnosticsReportTest, SparsifyErrorIsJudgedOnlyWhereTheBlockLooksSparse) {
  DiagnosticsReport r = healthy_report();
  std::fill(r.self_attn.sparsify_error.begin(), r.self_attn.sparsify_error.end(), 0.9);
  for (int64_t h = 0; h < kH; ++h) r.self_attn.keys_for_90[r.index(0, 2, h)] = 0.05;  // block 2 at sigma 0.9
  const std::vector<BlockVerdict> verdicts = check_thresholds(r, Thresholds::defaults());
  EXPECT_EQ(verdicts[0].verdict, Verdict::Pass);  // dense: expected to change when sparsified
  EXPECT_EQ(verdicts[1].verdict, Verdict::Pass);
  EXPECT_EQ(verdicts[2].verdict, Verdict::Fail);
  ASSERT_EQ(verdicts[2].reasons.size(), 1u);
  EXPECT_NE(verdicts[2].reasons[0].find("self_attn.sparsify_error 0.9 above the fail limit 0.5 at sigma 0.9 "
                                        "(timestep 0); 1 of 1 timesteps"),
            std::string::npos)
      << verdicts[2].reasons[0];
}

TEST(DiagnosticsReportTest, SummaryHasVerdictsAndWorstHeads) {
  DiagnosticsReport r = healthy_report();
  r.self_attn.sink_mass[r.index(1, 1, 1)] = 0.9;
  const nlohmann::json s = summarize(r, Thresholds::defaults());
  EXPECT_EQ(s["verdict"], "fail");
  EXPECT_EQ(s["per_block"][1]["verdict"], "fail");
  EXPECT_EQ(s["per_block"][0]["verdict"], "pass");
  EXPECT_EQ(s["per_block"][1]["self_attn"]["worst_heads"]["sink_mass"]["head"], 1);
  const nlohmann::json& worst = s["worst_heads"]["self_attn"]["sink_mass"][0];
  EXPECT_EQ(worst["block"], 1);
  EXPECT_EQ(worst["head"], 1);
  EXPECT_NEAR(worst["value"].get<double>(), (0.9 + 0.05) / 2, 1e-12);  // mean over the two timesteps
  EXPECT_EQ(worst["sink_positions"][1], r.self_attn.sink_positions[r.index(1, 1, 1)]);
  EXPECT_EQ(s["blocks_worst_first"][0], 1);
  EXPECT_EQ(s["worst_heads"]["self_attn"]["sink_mass"].size(), kWorstHeads);
}

TEST(DiagnosticsReportTest, BlocksRankBySinkMassThenEntropy) {
  DiagnosticsReport r = healthy_report();
  r.blocks = 4;
  for (AttentionKindReport* k : {&r.self_attn, &r.cross_attn})  // grow to 4 blocks
    for (std::vector<double>* v : {&k->entropy, &k->sink_mass, &k->top1_over_threshold, &k->keys_for_90,
                                   &k->keys_for_95, &k->structure_correlation})
      if (!v->empty()) v->assign(kT * 4 * kH, 0.5);
  r.self_attn.frame_distance_mass.clear();
  r.self_attn.sparsify_error.clear();
  r.cross_attn.sparsify_error.clear();
  for (AttentionKindReport* k : {&r.self_attn, &r.cross_attn}) {
    k->sink_keys.clear();
    k->sink_positions.clear();
    k->pooled_maps.clear();
    k->sink_value_norm.clear();
    (k == &r.self_attn ? k->sink_first_frame : k->first_key_mass).clear();
  }
  for (int64_t t = 0; t < kT; ++t) {
    r.self_attn.sink_mass[r.index(t, 2, 1)] = 0.8;  // block 2 sinks most
    r.self_attn.sink_mass[r.index(t, 0, 0)] = 0.6;  // blocks 0 and 3 tie on sink mass ...
    r.self_attn.sink_mass[r.index(t, 3, 1)] = 0.6;
    r.self_attn.entropy[r.index(t, 3, 0)] = 0.1;   // ... and block 3 has the lower entropy
    r.cross_attn.sink_mass[r.index(t, 1, 0)] = 0.99;  // cross-attention does not rank
  }
  EXPECT_EQ(rank_blocks_worst_first(r), (std::vector<int>{2, 3, 0, 1}));
}

TEST(DiagnosticsReportTest, ShippedDefaultsFileEqualsCompiledDefaults) {
  const std::string shipped = std::string(VDITKIT_SOURCE_DIR) + "/diagnostics/default_checks.json";
  EXPECT_EQ(Thresholds::load(shipped).limits, Thresholds::defaults().limits);
  EXPECT_EQ(nlohmann::json::parse(default_checks_json()), Thresholds::defaults().limits);
}

TEST(DiagnosticsReportTest, BadThresholdFilesNameFileAndKey) {
  ScratchDir dir;
  const auto load_error = [&](const std::string& text) {
    write_file(dir / "checks.json", text);
    return error_of([&] { Thresholds::load(dir / "checks.json"); });
  };
  const std::string file = dir / "checks.json";
  EXPECT_EQ(load_error(R"({"self_attn": {"sink_mass": {"warn": "high", "fail": 0.6, "direction": "max"}}})"),
            file + ": key \"self_attn.sink_mass.warn\" must be a number");
  EXPECT_EQ(load_error(R"({"self_attn": {"sink_mas": {"warn": 0.3, "fail": 0.6, "direction": "max"}}})").rfind(
                file + ": key \"self_attn.sink_mas\" is not a metric", 0),
            0u);
  EXPECT_EQ(load_error(R"({"cross_attn": {"sink_mass": {"warn": 0.9, "fail": 0.6, "direction": "max"}}})"),
            file + ": key \"cross_attn.sink_mass\": warn 0.9 must come before fail 0.6 for direction max");
  EXPECT_EQ(load_error(R"({"self_attn": {"entropy": {"warn": 0.2, "fail": 0.1, "direction": "down"}}})"),
            file + ": key \"self_attn.entropy.direction\" must be \"max\" or \"min\"");
  EXPECT_EQ(load_error(R"({"cross_attn": {"structure_correlation": {"warn": 0.2, "fail": 0.1, "direction": "min"}}})"),
            file + ": key \"cross_attn.structure_correlation\": structure_correlation is measured for "
                   "self-attention only");
  EXPECT_EQ(load_error("{\"self_attn\": ").rfind(file + ": not valid JSON", 0), 0u);
  EXPECT_EQ(error_of([&] { Thresholds::load(dir / "missing.json"); }),
            dir / "missing.json" + ": cannot read thresholds file");
}

// An independent PNG decoder (every filter type, CRCs checked) printing "width height
// distinct_colours rgb_hex".
const char* const kDecodePng = R"py(
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
pos, idat, ihdr = 8, b'', None
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    assert zlib.crc32(kind + body) == struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])[0], kind
    if kind == b'IHDR': ihdr = struct.unpack('>IIBBBBB', body)
    if kind == b'IDAT': idat += body
    pos += 12 + n
w, h, depth, colour, _, _, interlace = ihdr
assert depth == 8 and colour in (2, 6) and interlace == 0, ihdr
bpp = 3 if colour == 2 else 4
stride, raw = w * bpp, zlib.decompress(idat)
prev, pixels = bytearray(stride), []
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            line[i] = (line[i] + min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]) & 255
    pixels += [bytes(line[i:i + 3]) for i in range(0, stride, bpp)]
    prev = line
print(w, h, len(set(pixels)), b''.join(pixels).hex())
)py";

struct DecodedPng {
  int64_t width = 0, height = 0, colours = 0;
  std::string rgb_hex;
};

DecodedPng decode_png(const ScratchDir& dir, const std::string& png) {
  write_file(dir / "decode_png.py", kDecodePng);
  const CommandResult r = run_command(std::string(VDITKIT_PYTHON) + " " + dir / "decode_png.py" + " " + png);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  DecodedPng d;
  std::istringstream(r.output) >> d.width >> d.height >> d.colours >> d.rgb_hex;
  return d;
}

TEST(DiagnosticsPngTest, WrittenImageDecodesToItsPixels) {
  ScratchDir dir;
  RgbImage image(3, 2);
  std::string expected_hex;
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 3; ++x) {
      image.at(x, y) = {static_cast<uint8_t>(40 * x), static_cast<uint8_t>(200 + y), static_cast<uint8_t>(x + 7 * y)};
      char hex[7];
      std::snprintf(hex, sizeof hex, "%02x%02x%02x", image.at(x, y).r, image.at(x, y).g, image.at(x, y).b);
      expected_hex += hex;
    }
  write_png(dir / "image.png", image);

  const std::string bytes = read_text(dir / "image.png");
  ASSERT_GE(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n"));
  // IHDR: length 13, type, width 3, height 2, depth 8, colour type 2 (RGB), methods 0, no interlace.
  EXPECT_EQ(bytes.substr(8, 21), std::string("\0\0\0\x0dIHDR\0\0\0\x03\0\0\0\x02\x08\x02\0\0\0", 21));
  const DecodedPng d = decode_png(dir, dir / "image.png");
  EXPECT_EQ(d.width, 3);
  EXPECT_EQ(d.height, 2);
  EXPECT_EQ(d.rgb_hex, expected_hex);
}

TEST(DiagnosticsPngTest, HeatmapColoursValuesWithViridisAndMissingInGrey) {
  const RgbImage image = render_heatmap({0.0, 1.0, NAN, 0.5}, 2, 2, 0.0, 1.0);
  EXPECT_EQ(image.width, 240);  // 240 / 2 pixels per cell
  EXPECT_EQ(image.at(0, 0), viridis_samples().front());
  EXPECT_EQ(image.at(239, 119), viridis_samples().back());
  EXPECT_EQ(image.at(0, 239), kMissingColour);
  EXPECT_EQ(image.at(239, 239), viridis_samples()[4]);  // the middle sample
  EXPECT_EQ(viridis(0.0625), (Rgb{70, 21, 102}));       // halfway between the first two samples
}

// The files report.html refers to by src="...".
std::vector<std::string> image_sources(const std::string& html) {
  std::vector<std::string> sources;
  const std::regex src("src=\"([^\"]+)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), src); it != std::sregex_iterator(); ++it)
    sources.push_back((*it)[1]);
  return sources;
}

TEST(DiagnosticsReportTest, ReportDirectoryHoldsEveryOutput) {
  ScratchDir dir;
  DiagnosticsReport r = healthy_report();
  r.self_attn.sink_mass[r.index(1, 1, 1)] = 0.9;
  write_report(dir / "report", r, Thresholds::defaults());
  for (const char* file : {"diagnostics.h5", "summary.json", "report.html", "self_attn_sink_mass.png",
                           "cross_attn_entropy.png", "self_attn_frame_distance.png", "pooled_b1_h1_t1.png"})
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "report" / file)) << file;
  EXPECT_EQ(nlohmann::json::parse(read_text(dir / "report/summary.json")), summarize(r, Thresholds::defaults()));

  const std::string html = read_text(dir / "report/report.html");
  EXPECT_NE(html.find("<table class=\"verdicts\">"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"fail\">fail</td>"), std::string::npos);
  EXPECT_NE(html.find("self_attn.sink_mass 0.9 above the fail limit 0.6 at head 1"), std::string::npos);
  EXPECT_NE(html.find("model &lt;test&gt; &amp; &quot;friends&quot;"), std::string::npos);
  const std::vector<std::string> sources = image_sources(html);
  EXPECT_GE(sources.size(), 11u + kWorstHeads * kT);  // a grid per metric and kind, pooled maps
  for (const std::string& src : sources) {
    EXPECT_EQ(src.find('/'), std::string::npos) << src << " is not beside report.html";
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "report" / src)) << src;
  }
  EXPECT_EQ(html.find("http"), std::string::npos);  // nothing fetched: readable offline
}

TEST(DiagnosticsReportTest, ReportShowsBeforeAndAfterSideBySide) {
  ScratchDir dir;
  DiagnosticsReport before = healthy_report(), after = healthy_report();
  before.model = "start";
  before.self_attn.sink_mass[before.index(1, 1, 1)] = 0.9;
  write_report(dir / "report", after, Thresholds::defaults(), &before);
  const std::string html = read_text(dir / "report/report.html");
  EXPECT_NE(html.find("<td class=\"pass\">fail &rarr; pass</td>"), std::string::npos);
  for (const char* pair : {"self_attn_sink_mass.png", "cross_attn_keys_for_95.png", "self_attn_frame_distance.png"}) {
    const std::string src = std::string("src=\"") + pair, before_src = std::string("src=\"before_") + pair;
    ASSERT_NE(html.find(before_src), std::string::npos) << pair;
    EXPECT_LT(html.find(before_src), html.find(src)) << "before comes first";
  }
  for (const std::string& src : image_sources(html))
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "report" / src)) << src;
}

TEST(DiagnosticsReportTest, ReportRendersInHeadlessChromium) {
  const char* chromium = "/usr/bin/chromium";
  if (!std::filesystem::exists(chromium)) GTEST_SKIP() << chromium << " is not installed";
  ScratchDir dir;
  DiagnosticsReport r = healthy_report();
  r.self_attn.sink_mass[r.index(1, 1, 1)] = 0.9;
  write_report(dir / "report", r, Thresholds::defaults());
  const CommandResult shot = run_command(std::string(chromium) +
                                         " --headless --no-sandbox --disable-gpu --window-size=800,600"
                                         " --screenshot=" + dir / "screenshot.png" + " file://" +
                                         dir / "report/report.html");
  ASSERT_TRUE(std::filesystem::exists(dir / "screenshot.png")) << shot.output;
  const DecodedPng d = decode_png(dir, dir / "screenshot.png");
  EXPECT_EQ(d.width, 800);
  EXPECT_GT(d.colours, 20) << "a blank page has one colour; text, table shading and heatmaps many";
}

}  // namespace
}  // namespace vdit
