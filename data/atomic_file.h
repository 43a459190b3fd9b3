#pragma once
// Files that are complete or absent, across a crash and a power cut alike. Every file vditkit
// writes goes through here: the content goes to PATH.partial, which is flushed, fsynced and
// closed (each step checked: a full disk often shows only at fsync or close), renamed over
// PATH, and the directory holding it is fsynced so that the rename itself is on disk. Any
// failure throws a vdit::Error naming the file and the step, and removes PATH.partial.
#include <cstddef>
#include <functional>
#include <string>

namespace vdit {

// PATH.partial open for writing, for writers that produce the bytes themselves.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates (truncates) PATH.partial
  ~AtomicFile();                          // uncommitted: closes and removes PATH.partial
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  // fsync, close, rename over PATH, fsync PATH's directory.
  void commit();

 private:
  std::string path_, partial_;
  int fd_ = -1;
  bool committed_ = false;
};

// For writers that need a file name (HDF5, FFmpeg): fill(partial) creates the file `partial`
// (PATH.partial) and closes it, checking the close; it is then made durable and renamed as above.
void write_file_atomically(const std::string& path, const std::function<void(const std::string& partial)>& fill);

void write_text_atomically(const std::string& path, const std::string& text);

// fsync of an existing file or directory, checked.
void sync_path(const std::string& path);

// Renames `from` over `to` and fsyncs the directory holding `to` (and `from`'s, if another).
void durable_rename(const std::string& from, const std::string& to);

}  // namespace vdit
