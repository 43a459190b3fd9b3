// vditkit make-dataset: a pixel-space dataset (latents = RGB frames scaled to [-1, 1], in_dim 3)
// from captioned video files or from generated clips, each caption embedded by the stand-in
// text encoder (data/text_embedding_table.h), one row per word or padded to a fixed length.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "autograd/check.h"
#include "data/clip_generator.h"
#include "data/file_list.h"
#include "data/latent_dataset.h"
#include "data/text_embedding_table.h"
#include "data/video_io.h"
#include "tools/command.h"

namespace vdit::cli {
namespace {

namespace fs = std::filesystem;

// The videos `paths` name: files as given, each directory replaced by its files (sorted),
// leaving out caption sidecars and hidden files.
std::vector<std::string> video_files(const std::vector<std::string>& paths) {
  return expand_directories(
      paths, [](const fs::path& p) { return p.extension() != ".txt" && p.filename().string().front() != '.'; }, "videos");
}

// The caption of `video`: its sidecar, the same name with .txt for an extension, trimmed.
std::string read_caption(const std::string& video) {
  const std::string sidecar = fs::path(video).replace_extension(".txt").string();
  std::ifstream file(sidecar);
  VDIT_CHECK(file, video << ": no caption (expected " << sidecar << " beside it)");
  std::ostringstream text;
  text << file.rdbuf();
  const std::string caption = std::regex_replace(text.str(), std::regex("^\\s+|\\s+$"), "");
  VDIT_CHECK(std::any_of(caption.begin(), caption.end(), [](unsigned char c) { return std::isalnum(c); }),
             sidecar << ": the caption has no words");
  return caption;
}

int run_make_dataset(int argc, char** argv) {
  std::vector<std::string> videos;
  int64_t generate = 0, frames = 0, text_dim = 64, text_len = 16, stride = 1, pad_to = 0;
  uint64_t seed = 0;
  std::string size, out, export_dir;
  po::options_description options;
  options.add_options()
      ("videos", po::value(&videos)->multitoken(), "video files or directories of them; each FILE.EXT is captioned by FILE.txt beside it")
      ("generate", po::value(&generate), "instead of videos, generate N captioned clips of moving shapes")
      ("frames", po::value(&frames)->required(), "frames F per clip (from the start of each video)")
      ("size", po::value(&size)->required(), "frame size HxW (videos are resized to cover it and centre-cropped)")
      ("out", po::value(&out)->required(), "output .h5")
      ("text-dim", po::value(&text_dim)->default_value(text_dim), "context width (the model's text_dim)")
      ("text-len", po::value(&text_len)->default_value(text_len), "context rows at most (one per caption word)")
      ("pad-context-to", po::value(&pad_to), "zero-pad each context to N rows (at least --text-len) and store a "
                                             "context_mask of its word rows (CogVideoX takes exactly its max_text_seq_length)")
      ("stride", po::value(&stride)->default_value(stride), "keep every stride-th video frame")
      ("seed", po::value(&seed)->default_value(seed), "seed of the generated clips (the text table's is fixed)")
      ("export-mp4", po::value(&export_dir), "also write each clip, as stored, to DIR/clip_000000.mp4, ...");
  const po::variables_map vm = parse_options(
      argc, argv, "vditkit make-dataset (--videos DIR|FILES... | --generate N) --frames F --size HxW --out D.h5", options);
  if (vm.empty()) return 0;
  if (vm.count("videos") == vm.count("generate")) throw UsageError("give exactly one of --videos and --generate");
  if (vm.count("generate") && generate < 1) throw UsageError("--generate must be at least 1");
  if (frames < 1 || text_dim < 1 || text_len < 1) throw UsageError("--frames, --text-dim and --text-len must be at least 1");
  if (vm.count("pad-context-to") && pad_to < text_len)
    throw UsageError("--pad-context-to " + std::to_string(pad_to) + " is less than --text-len " + std::to_string(text_len) +
                     ": a caption of that many words would not fit");
  const FrameSize frame = parse_size(size);

  std::vector<Clip> clips;
  if (vm.count("generate")) {
    clips = generate_clips(generate, frames, frame.height, frame.width, seed);
  } else {
    for (const std::string& video : video_files(videos))
      clips.push_back({decode_video(video, frames, frame.height, frame.width, stride), read_caption(video)});
  }

  if (!export_dir.empty()) fs::create_directories(export_dir);
  std::vector<LatentSample> samples;
  for (size_t i = 0; i < clips.size(); ++i) {
    const Clip& clip = clips[i];
    if (!export_dir.empty()) {
      char name[32];
      std::snprintf(name, sizeof name, "clip_%06zu.mp4", i);
      encode_mp4((fs::path(export_dir) / name).string(), clip.frames);
    }
    Tensor latents = Tensor::empty(clip.frames.shape());
    std::transform(clip.frames.data(), clip.frames.data() + clip.frames.numel(), latents.data(),
                   [](float v) { return 2.0f * v - 1.0f; });
    samples.push_back({latents, embed_caption(clip.caption, text_dim, text_len), clip.caption});
    if (pad_to > 0) pad_context(samples.back(), pad_to);
  }
  write_latent_dataset(out, samples);
  std::cout << "wrote " << samples.size() << " clips as latents [3, " << frames << ", " << frame.height << ", "
            << frame.width << "] in [-1, 1] with context ";
  if (pad_to > 0)
    std::cout << "[" << pad_to << ", " << text_dim << "] (a context_mask marks its <= " << text_len << " word rows)";
  else
    std::cout << "[<= " << text_len << ", " << text_dim << "]";
  std::cout << " to " << out;
  if (!export_dir.empty()) std::cout << ", and MP4s to " << export_dir;
  std::cout << "\n";
  return 0;
}

const RegisterCommand reg("make-dataset", "write a pixel-space dataset from captioned videos or generated clips",
                          run_make_dataset);

}  // namespace
}  // namespace vdit::cli
