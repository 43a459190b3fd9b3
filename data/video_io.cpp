#include "data/video_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "autograd/check.h"
#include "data/atomic_file.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace vdit {

namespace {

// FFmpeg's handles are freed through a pointer to the pointer; unique_ptr holds them.
template <typename T, void (*Free)(T**)>
struct FreeWith {
  void operator()(T* p) const { Free(&p); }
};
using InputPtr = std::unique_ptr<AVFormatContext, FreeWith<AVFormatContext, avformat_close_input>>;
using CodecPtr = std::unique_ptr<AVCodecContext, FreeWith<AVCodecContext, avcodec_free_context>>;
using FramePtr = std::unique_ptr<AVFrame, FreeWith<AVFrame, av_frame_free>>;
using PacketPtr = std::unique_ptr<AVPacket, FreeWith<AVPacket, av_packet_free>>;

struct FreeOutput {
  void operator()(AVFormatContext* c) const {
    avio_closep(&c->pb);
    avformat_free_context(c);
  }
};
using OutputPtr = std::unique_ptr<AVFormatContext, FreeOutput>;

struct FreeSws {
  void operator()(SwsContext* c) const { sws_freeContext(c); }
};
using SwsPtr = std::unique_ptr<SwsContext, FreeSws>;

// Our errors say what failed and where; FFmpeg's INFO and WARNING lines (libx264 prints its
// statistics at INFO) would only clutter a command's progress. Its own errors still show.
void quiet_ffmpeg_log() {
  static const bool once = (av_log_set_level(AV_LOG_ERROR), true);
  (void)once;
}

std::string av_error(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE];
  av_strerror(code, text, sizeof text);
  return text;
}

template <typename T>
T* checked_alloc(T* p, const std::string& path) {
  VDIT_CHECK(p, path << ": out of memory allocating an FFmpeg object");
  return p;
}

FramePtr alloc_frame(int width, int height, AVPixelFormat format, const std::string& path) {
  FramePtr frame(checked_alloc(av_frame_alloc(), path));
  frame->width = width;
  frame->height = height;
  frame->format = format;
  const int ret = av_frame_get_buffer(frame.get(), 0);
  VDIT_CHECK(ret >= 0, path << ": cannot allocate a " << width << "x" << height << " frame (" << av_error(ret) << ")");
  return frame;
}

// Frames of the encoders' input: [3, F, H, W] float32, sizes FFmpeg can take.
void check_frames(const Tensor& frames, const std::string& path) {
  VDIT_CHECK(frames.defined() && frames.dtype() == DType::F32 && frames.ndim() == 4 && frames.size(0) == 3 &&
                 frames.numel() > 0 && frames.size(2) <= 16384 && frames.size(3) <= 16384,
             path << ": frames must be float32 [3, F, H, W] with no empty axis, got "
                  << (frames.defined() ? to_string(frames.shape()) : "none"));
}

// Frame `f` of `frames` [3, F, H, W] into the packed 8-bit RGB frame `rgb`, rounding to nearest.
void fill_rgb24(const Tensor& frames, int64_t f, AVFrame& rgb) {
  const int64_t count = frames.size(1), height = frames.size(2), width = frames.size(3);
  const float* values = frames.data();
  for (int64_t c = 0; c < 3; ++c) {
    const float* plane = values + (c * count + f) * height * width;
    for (int64_t y = 0; y < height; ++y) {
      uint8_t* row = rgb.data[0] + y * rgb.linesize[0] + c;
      for (int64_t x = 0; x < width; ++x)
        row[3 * x] = static_cast<uint8_t>(std::clamp(plane[y * width + x], 0.0f, 1.0f) * 255.0f + 0.5f);
    }
  }
}

// Sends `frame` (null: end of stream) to `encoder` and hands every packet it returns to `sink`.
void encode_frame(AVCodecContext& encoder, const AVFrame* frame, AVPacket& packet,
                  const std::function<void(AVPacket&)>& sink, const std::string& path) {
  int ret = avcodec_send_frame(&encoder, frame);
  VDIT_CHECK(ret >= 0, path << ": encoder " << encoder.codec->name << " refused a frame (" << av_error(ret) << ")");
  while ((ret = avcodec_receive_packet(&encoder, &packet)) >= 0) {
    sink(packet);
    av_packet_unref(&packet);
  }
  VDIT_CHECK(ret == AVERROR(EAGAIN) || ret == AVERROR_EOF,
             path << ": encoder " << encoder.codec->name << " failed (" << av_error(ret) << ")");
}

// Converts decoded frames of any size and pixel format to RGB, resized so the target
// height x width fits inside with one side filled, and centre-crops them into the output.
class RgbCropper {
 public:
  RgbCropper(Tensor& out, const std::string& path) : out_(out), path_(path) {}

  void write(const AVFrame& frame, int64_t index) {
    const int64_t count = out_.size(1), height = out_.size(2), width = out_.size(3);
    // The larger of the two scale factors makes the resized frame cover the target on both axes.
    const double scale = std::max(static_cast<double>(height) / frame.height, static_cast<double>(width) / frame.width);
    const int scaled_h = static_cast<int>(std::max<int64_t>(height, std::lround(frame.height * scale)));
    const int scaled_w = static_cast<int>(std::max<int64_t>(width, std::lround(frame.width * scale)));
    const auto format = static_cast<AVPixelFormat>(frame.format);
    sws_.reset(sws_getCachedContext(sws_.release(), frame.width, frame.height, format, scaled_w, scaled_h,
                                    AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                    nullptr, nullptr, nullptr));
    VDIT_CHECK(sws_, path_ << ": cannot convert " << frame.width << "x" << frame.height << " "
                           << (av_get_pix_fmt_name(format) ? av_get_pix_fmt_name(format) : "unknown")
                           << " frames to RGB");
    // Decode with the YUV matrix and range the stream declares (BT.601 when it declares none),
    // as the ffmpeg tool does. For RGB sources there is no matrix and the call does nothing.
    const int matrix = frame.colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : frame.colorspace;
    sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(matrix), frame.color_range == AVCOL_RANGE_JPEG,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    if (!rgb_ || rgb_->width != scaled_w || rgb_->height != scaled_h)
      rgb_ = alloc_frame(scaled_w, scaled_h, AV_PIX_FMT_RGB24, path_);
    sws_scale(sws_.get(), frame.data, frame.linesize, 0, frame.height, rgb_->data, rgb_->linesize);

    const int64_t top = (scaled_h - height) / 2, left = (scaled_w - width) / 2;
    float* values = out_.data();
    for (int64_t c = 0; c < 3; ++c) {
      float* plane = values + (c * count + index) * height * width;
      for (int64_t y = 0; y < height; ++y) {
        const uint8_t* row = rgb_->data[0] + (top + y) * rgb_->linesize[0] + 3 * left + c;
        for (int64_t x = 0; x < width; ++x) plane[y * width + x] = row[3 * x] * (1.0f / 255.0f);
      }
    }
  }

 private:
  Tensor& out_;
  const std::string& path_;
  SwsPtr sws_;
  FramePtr rgb_;
};

// The MP4 body of encode_mp4, written straight to `path`.
void write_mp4(const std::string& path, const Tensor& frames, int fps) {
  const int count = static_cast<int>(frames.size(1)), height = static_cast<int>(frames.size(2)),
            width = static_cast<int>(frames.size(3));
  AVFormatContext* raw = nullptr;
  int ret = avformat_alloc_output_context2(&raw, nullptr, "mp4", path.c_str());
  VDIT_CHECK(ret >= 0, path << ": cannot set up an MP4 muxer (" << av_error(ret) << ")");
  OutputPtr output(raw);

  // libx264 writes H.264, which every player reads; FFmpeg builds without it still have their
  // own MPEG-4 part 2 encoder, which MP4 also carries.
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  const bool h264 = codec != nullptr;
  if (!h264) codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  VDIT_CHECK(codec, path << ": this FFmpeg has neither the libx264 nor the mpeg4 encoder");
  CodecPtr encoder(checked_alloc(avcodec_alloc_context3(codec), path));
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_YUV420P;
  encoder->time_base = {1, fps};
  encoder->framerate = {fps, 1};
  // Tagged as what swscale's default conversion below produces, so decoders invert it exactly.
  encoder->colorspace = AVCOL_SPC_SMPTE170M;
  encoder->color_range = AVCOL_RANGE_MPEG;
  if (output->oformat->flags & AVFMT_GLOBALHEADER) encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (h264) {
    av_opt_set(encoder->priv_data, "crf", "18", 0);  // visually near-lossless: these are training data
  } else {
    encoder->flags |= AV_CODEC_FLAG_QSCALE;
    encoder->global_quality = 2 * FF_QP2LAMBDA;
  }
  ret = avcodec_open2(encoder.get(), codec, nullptr);
  VDIT_CHECK(ret >= 0, path << ": cannot open encoder " << codec->name << " for " << width << "x" << height << " ("
                            << av_error(ret) << ")");

  AVStream* stream = checked_alloc(avformat_new_stream(output.get(), nullptr), path);
  stream->time_base = encoder->time_base;
  avcodec_parameters_from_context(stream->codecpar, encoder.get());
  ret = avio_open(&output->pb, path.c_str(), AVIO_FLAG_WRITE);
  VDIT_CHECK(ret >= 0, path << ": cannot open for writing (" << av_error(ret) << ")");
  ret = avformat_write_header(output.get(), nullptr);
  VDIT_CHECK(ret >= 0, path << ": cannot write the MP4 header (" << av_error(ret) << ")");

  SwsPtr to_yuv(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                               SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
  VDIT_CHECK(to_yuv, path << ": cannot convert RGB to yuv420p");
  FramePtr rgb = alloc_frame(width, height, AV_PIX_FMT_RGB24, path);
  FramePtr yuv = alloc_frame(width, height, AV_PIX_FMT_YUV420P, path);
  PacketPtr packet(checked_alloc(av_packet_alloc(), path));
  const auto mux = [&](AVPacket& p) {
    // One frame per packet. Encoders need not set the duration (libx264 does not), and
    // without it the MP4's edit list ends at the last frame's start, hiding that frame.
    p.duration = 1;
    av_packet_rescale_ts(&p, encoder->time_base, stream->time_base);
    p.stream_index = stream->index;
    const int r = av_interleaved_write_frame(output.get(), &p);
    VDIT_CHECK(r >= 0, path << ": cannot write a packet (" << av_error(r) << ")");
  };
  for (int f = 0; f < count; ++f) {
    fill_rgb24(frames, f, *rgb);
    ret = av_frame_make_writable(yuv.get());  // the encoder may still hold the previous frame
    VDIT_CHECK(ret >= 0, path << ": cannot allocate a frame (" << av_error(ret) << ")");
    sws_scale(to_yuv.get(), rgb->data, rgb->linesize, 0, height, yuv->data, yuv->linesize);
    yuv->pts = f;
    encode_frame(*encoder, yuv.get(), *packet, mux, path);
  }
  encode_frame(*encoder, nullptr, *packet, mux, path);
  ret = av_write_trailer(output.get());
  VDIT_CHECK(ret >= 0, path << ": cannot finish the MP4 (" << av_error(ret) << ")");
  ret = avio_closep(&output->pb);
  VDIT_CHECK(ret >= 0, path << ": cannot close (" << av_error(ret) << ")");
}

}  // namespace

bool video_io_available() { return true; }

Tensor decode_video(const std::string& path, int64_t frames, int64_t height, int64_t width, int64_t stride) {
  VDIT_CHECK(frames >= 1 && height >= 1 && width >= 1 && stride >= 1,
             path << ": decoding needs frames, height, width and stride of at least 1, got " << frames << ", "
                  << height << ", " << width << ", " << stride);
  quiet_ffmpeg_log();
  AVFormatContext* raw = nullptr;
  int ret = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  VDIT_CHECK(ret >= 0, path << ": cannot open as a video (" << av_error(ret) << ")");
  InputPtr input(raw);
  ret = avformat_find_stream_info(input.get(), nullptr);
  VDIT_CHECK(ret >= 0, path << ": cannot read its streams (" << av_error(ret) << ")");
  const AVCodec* codec = nullptr;
  const int stream = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  VDIT_CHECK(stream != AVERROR_DECODER_NOT_FOUND, path << ": FFmpeg has no decoder for its video stream");
  VDIT_CHECK(stream >= 0, path << ": no video stream");
  CodecPtr decoder(checked_alloc(avcodec_alloc_context3(codec), path));
  ret = avcodec_parameters_to_context(decoder.get(), input->streams[stream]->codecpar);
  VDIT_CHECK(ret >= 0, path << ": bad video stream parameters (" << av_error(ret) << ")");
  ret = avcodec_open2(decoder.get(), codec, nullptr);
  VDIT_CHECK(ret >= 0, path << ": cannot open decoder " << codec->name << " (" << av_error(ret) << ")");

  Tensor out = Tensor::empty({3, frames, height, width});
  RgbCropper cropper(out, path);
  PacketPtr packet(checked_alloc(av_packet_alloc(), path));
  FramePtr frame(checked_alloc(av_frame_alloc(), path));
  int64_t decoded = 0, kept = 0;
  const auto receive_frames = [&] {
    int r = 0;
    while (kept < frames && (r = avcodec_receive_frame(decoder.get(), frame.get())) >= 0) {
      if (decoded++ % stride == 0) cropper.write(*frame, kept++);
      av_frame_unref(frame.get());
    }
    VDIT_CHECK(kept == frames || r == AVERROR(EAGAIN) || r == AVERROR_EOF,
               path << ": corrupt video data after frame " << decoded << " (" << av_error(r) << ")");
  };
  while (kept < frames && (ret = av_read_frame(input.get(), packet.get())) >= 0) {
    if (packet->stream_index == stream) {
      const int sent = avcodec_send_packet(decoder.get(), packet.get());
      VDIT_CHECK(sent >= 0, path << ": corrupt video data after frame " << decoded << " (" << av_error(sent) << ")");
      receive_frames();
    }
    av_packet_unref(packet.get());
  }
  VDIT_CHECK(kept == frames || ret == AVERROR_EOF, path << ": read error after frame " << decoded << " (" << av_error(ret) << ")");
  if (kept < frames) {  // the decoder may still hold frames back (B-frame reordering)
    avcodec_send_packet(decoder.get(), nullptr);
    receive_frames();
  }
  VDIT_CHECK(kept == frames, path << ": has " << decoded << " frames, but " << frames << " at stride " << stride
                                  << " need " << (frames - 1) * stride + 1);
  return out;
}

void encode_mp4(const std::string& path, const Tensor& frames, int fps) {
  check_frames(frames, path);
  VDIT_CHECK(frames.size(2) % 2 == 0 && frames.size(3) % 2 == 0,
             path << ": MP4 frames need an even height and width (4:2:0 chroma), got " << frames.size(2) << "x"
                  << frames.size(3));
  VDIT_CHECK(fps >= 1, path << ": fps must be at least 1, got " << fps);
  quiet_ffmpeg_log();
  write_file_atomically(path, [&](const std::string& partial) { write_mp4(partial, frames, fps); });
}

std::vector<std::string> encode_pngs(const std::string& prefix, const Tensor& frames) {
  check_frames(frames, prefix);
  quiet_ffmpeg_log();
  const int count = static_cast<int>(frames.size(1)), height = static_cast<int>(frames.size(2)),
            width = static_cast<int>(frames.size(3));
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  VDIT_CHECK(codec, prefix << ": this FFmpeg has no PNG encoder");
  CodecPtr encoder(checked_alloc(avcodec_alloc_context3(codec), prefix));
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_RGB24;
  encoder->time_base = {1, 1};
  int ret = avcodec_open2(encoder.get(), codec, nullptr);
  VDIT_CHECK(ret >= 0, prefix << ": cannot open the PNG encoder (" << av_error(ret) << ")");

  std::vector<std::string> paths;
  const auto write_png = [&](AVPacket& p) {  // one packet per frame, in order
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "_%03zu.png", paths.size());
    paths.push_back(prefix + suffix);
    AtomicFile file(paths.back());
    file.write(p.data, static_cast<size_t>(p.size));
    file.commit();
  };
  FramePtr rgb = alloc_frame(width, height, AV_PIX_FMT_RGB24, prefix);
  PacketPtr packet(checked_alloc(av_packet_alloc(), prefix));
  for (int f = 0; f < count; ++f) {
    ret = av_frame_make_writable(rgb.get());
    VDIT_CHECK(ret >= 0, prefix << ": cannot allocate a frame (" << av_error(ret) << ")");
    fill_rgb24(frames, f, *rgb);
    rgb->pts = f;
    encode_frame(*encoder, rgb.get(), *packet, write_png, prefix);
  }
  encode_frame(*encoder, nullptr, *packet, write_png, prefix);
  return paths;
}

}  // namespace vdit
