#include "train/progress.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "autograd/check.h"
#include "data/atomic_file.h"

namespace vdit {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60)
    std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%lds", s);
  return text;
}

ProgressLine::ProgressLine(std::string label, int64_t total, int64_t start, std::FILE* out)
    : label_(std::move(label)),
      total_(total),
      start_(start),
      out_(out),
      terminal_(out != nullptr && ::isatty(::fileno(out)) != 0),
      begin_(Clock::now()),
      last_print_(Clock::now() - std::chrono::hours(1)) {}

void ProgressLine::update(int64_t done, const std::string& detail) {
  if (!out_) return;
  const auto now = Clock::now();
  // Off a terminal (a log file, CI), a line every 5 s and the last one are enough.
  if (!terminal_ && done < total_ && now - last_print_ < std::chrono::seconds(5)) return;
  last_print_ = now;
  const double elapsed = std::chrono::duration<double>(now - begin_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done - start_) / elapsed : 0.0;
  const double left = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  std::fprintf(out_, "%s%s %lld/%lld  %s  %.2f/s  elapsed %s  left %s%s", terminal_ ? "\r\033[K" : "",
               label_.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
               detail.c_str(), rate, format_duration(elapsed).c_str(), format_duration(left).c_str(),
               terminal_ ? "" : "\n");
  std::fflush(out_);
  drawn_ = terminal_;
}

void ProgressLine::finish() {
  if (!out_) return;
  if (drawn_) std::fputc('\n', out_);
  drawn_ = false;
  std::fflush(out_);
}

void ProgressLine::message(const std::string& text) {
  if (!out_) return;
  finish();
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

JsonLinesLog::JsonLinesLog(const std::string& path, bool append)
    : path_(path), out_(path, append ? std::ios::app : std::ios::trunc) {
  VDIT_CHECK(out_, "cannot open log " << path << " for writing");
}

void JsonLinesLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  VDIT_CHECK(out_, "cannot write log " << path_ << ": " << std::strerror(errno));
}

void JsonLinesLog::sync() { sync_path(path_); }

}  // namespace vdit
