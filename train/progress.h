#pragma once
// What a user watches during a long run: one progress line (step/total, loss, smoothed loss,
// steps/s, time left), redrawn in place on a terminal and printed every few seconds otherwise;
// and a JSON-lines log beside the outputs for machines.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace vdit {

class ProgressLine {
 public:
  // `out` null: quiet (tests, library callers that report otherwise).
  ProgressLine(std::string label, int64_t total, int64_t start = 0, std::FILE* out = stderr);
  // Shows progress after `done` of `total` units; `detail` is appended (e.g. "loss 0.123").
  void update(int64_t done, const std::string& detail);
  // Ends the line (on a terminal) so that later output starts on a fresh one.
  void finish();
  // Prints a message without garbling the progress line.
  void message(const std::string& text);

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_, start_;
  std::FILE* out_;
  bool terminal_;
  Clock::time_point begin_, last_print_;
  bool drawn_ = false;
};

// Appends one JSON object per line, flushed after each, so a crash of the process loses
// nothing written; sync() makes it durable against a power cut too. Failures name the file.
class JsonLinesLog {
 public:
  explicit JsonLinesLog(const std::string& path, bool append);
  void write(const nlohmann::json& record);
  void sync();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace vdit
