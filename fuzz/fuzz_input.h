#pragma once
// What the fuzz targets share: the readers take paths, so each input is written to files in a
// per-process scratch directory (on /dev/shm where there is one: no disk traffic per run), and
// one rule for what a reader may do with bad input.
//
// The rule (the README's "Bad input gets a one-line error, never a crash"): a reader either
// succeeds or throws vdit::Error. Anything else (another exception, a crash, a sanitizer
// report, a huge allocation) is a finding: the target aborts and libFuzzer saves the input.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/check.h"

namespace vdit::fuzz {

// Inputs that hold several files separate them with this line (the seed corpora use it).
inline constexpr std::string_view kFileSeparator = "\n--- next file ---\n";

inline std::vector<std::string> split_files(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> files;
  size_t begin = 0;
  for (size_t at; (at = input.find(kFileSeparator, begin)) != std::string_view::npos;
       begin = at + kFileSeparator.size())
    files.emplace_back(input.substr(begin, at - begin));
  files.emplace_back(input.substr(begin));
  return files;
}

// An empty directory for this run's files: the previous run's are removed first, the
// directory itself when the process exits.
inline std::filesystem::path scratch_dir() {
  namespace fs = std::filesystem;
  struct Dir {
    fs::path path = (fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path()) /
                    ("vditkit-fuzz-" + std::to_string(::getpid()));
    ~Dir() { fs::remove_all(path); }
  };
  static const Dir dir;
  fs::remove_all(dir.path);
  fs::create_directories(dir.path);
  return dir.path;
}

inline std::string write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path.string();
}

// Runs `read` under the rule above.
template <typename Read>
void expect_success_or_error(Read read) {
  try {
    read();
  } catch (const vdit::Error&) {
    // the expected answer to bad input
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: not a vdit::Error: %s\n", e.what());
    std::abort();
  }
}

}  // namespace vdit::fuzz
