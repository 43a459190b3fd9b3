// Video I/O in a build without FFmpeg (cmake -DVDITKIT_VIDEO=OFF, e.g. an offline GPU machine):
// each call is an error that names the option and the file it was asked for.
#include "autograd/check.h"
#include "data/video_io.h"

namespace vdit {

namespace {

[[noreturn]] void no_video(const std::string& path) {
  VDIT_FAIL(path << ": this vditkit was built without video I/O (cmake -DVDITKIT_VIDEO=OFF); rebuild with "
                    "-DVDITKIT_VIDEO=ON and FFmpeg's development packages to read or write videos and images");
}

}  // namespace

bool video_io_available() { return false; }

Tensor decode_video(const std::string& path, int64_t, int64_t, int64_t, int64_t) { no_video(path); }
void encode_mp4(const std::string& path, const Tensor&, int) { no_video(path); }
std::vector<std::string> encode_pngs(const std::string& prefix, const Tensor&) { no_video(prefix + "_*.png"); }

}  // namespace vdit
