#include "data/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "autograd/check.h"

namespace vdit {

namespace fs = std::filesystem;

namespace {

// The directory holding `path` ("." for a bare name).
std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  VDIT_CHECK(fd >= 0, "cannot open " << path << " to sync it: " << std::strerror(errno));
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  const bool closed = ::close(fd) == 0;
  VDIT_CHECK(synced, "cannot sync " << path << ": " << std::strerror(sync_errno));
  VDIT_CHECK(closed, "cannot close " << path << ": " << std::strerror(errno));
}

void durable_rename(const std::string& from, const std::string& to) {
  VDIT_CHECK(std::rename(from.c_str(), to.c_str()) == 0,
             "cannot rename " << from << " to " << to << ": " << std::strerror(errno));
  sync_path(parent_of(to));
  if (!fs::equivalent(parent_of(from), parent_of(to))) sync_path(parent_of(from));
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), partial_(path_ + ".partial") {
  fd_ = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  VDIT_CHECK(fd_ >= 0, "cannot create " << partial_ << ": " << std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(partial_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd_, p, size);
    if (written < 0 && errno == EINTR) continue;
    VDIT_CHECK(written > 0, "cannot write " << partial_ << ": " << std::strerror(errno));
    p += written;
    size -= static_cast<size_t>(written);
  }
}

void AtomicFile::commit() {
  VDIT_CHECK(::fsync(fd_) == 0, "cannot sync " << partial_ << ": " << std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  VDIT_CHECK(::close(fd) == 0, "cannot close " << partial_ << ": " << std::strerror(errno));
  durable_rename(partial_, path_);
  committed_ = true;
}

void write_file_atomically(const std::string& path, const std::function<void(const std::string& partial)>& fill) {
  const std::string partial = path + ".partial";
  try {
    fill(partial);
    sync_path(partial);
    durable_rename(partial, path);
  } catch (...) {
    std::remove(partial.c_str());
    throw;
  }
}

void write_text_atomically(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace vdit
