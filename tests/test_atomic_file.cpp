// The one durable writer (data/atomic_file.h): a file appears complete or not at all, every
// failing step (create, write, sync, rename) is an error naming the file, and a failure
// leaves no partial file and the previous version intact. A file-size limit (RLIMIT_FSIZE)
// makes writes fail as a full disk does, without needing a small filesystem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "autograd/check.h"
#include "data/atomic_file.h"
#include "data/hdf5_file.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::error_of;
using testing::ScratchDir;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// While alive, writes past `bytes` in any file fail with EFBIG instead of raising SIGXFSZ.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limited{bytes, old_.rlim_max};
    setrlimit(RLIMIT_FSIZE, &limited);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit old_{};
  void (*previous_handler_)(int) = nullptr;
};

TEST(AtomicFile, TextAppearsWholeAndNoPartialStays) {
  ScratchDir dir;
  write_text_atomically(dir / "a.txt", "first");
  write_text_atomically(dir / "a.txt", "second");
  EXPECT_EQ(read_text(dir / "a.txt"), "second");
  EXPECT_FALSE(fs::exists(dir / "a.txt.partial"));
}

TEST(AtomicFile, UncommittedFileLeavesNothing) {
  ScratchDir dir;
  {
    AtomicFile file(dir / "b.bin");
    file.write("abc", 3);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(AtomicFile, FailedFillLeavesThePreviousVersion) {
  ScratchDir dir;
  write_text_atomically(dir / "c.txt", "good");
  EXPECT_EQ(error_of([&] {
              write_file_atomically(dir / "c.txt", [](const std::string& partial) {
                std::ofstream(partial) << "half";
                VDIT_FAIL("encoder failed");
              });
            }),
            "encoder failed");
  EXPECT_EQ(read_text(dir / "c.txt"), "good");
  EXPECT_FALSE(fs::exists(dir / "c.txt.partial"));
}

TEST(AtomicFileErrors, EachStepNamesTheFile) {
  ScratchDir dir;
  EXPECT_THAT(error_of([&] { write_text_atomically(dir / "missing/x.txt", "x"); }),
              AllOf(HasSubstr("cannot create " + dir / "missing/x.txt.partial"), HasSubstr("No such file or directory")));
  EXPECT_THAT(error_of([&] { write_file_atomically(dir / "y.h5", [](const std::string&) {}); }),
              HasSubstr("cannot open " + dir / "y.h5.partial" + " to sync it"));
  fs::create_directories(dir / "z.txt/occupied");
  EXPECT_THAT(error_of([&] { write_text_atomically(dir / "z.txt", "x"); }),
              HasSubstr("cannot rename " + dir / "z.txt.partial" + " to " + dir / "z.txt"));
  EXPECT_FALSE(fs::exists(dir / "z.txt.partial"));
}

TEST(AtomicFileErrors, FullDiskFailsTheWriteAndKeepsThePreviousVersion) {
  ScratchDir dir;
  write_text_atomically(dir / "t.txt", "previous");
  const std::string big(1 << 20, 'x');
  std::string error;
  {
    const FileSizeLimit limit(1 << 16);
    error = error_of([&] { write_text_atomically(dir / "t.txt", big); });
  }
  EXPECT_THAT(error, AllOf(HasSubstr("cannot write " + dir / "t.txt.partial"), HasSubstr("File too large")));
  EXPECT_EQ(read_text(dir / "t.txt"), "previous");
  EXPECT_FALSE(fs::exists(dir / "t.txt.partial"));
}

TEST(AtomicFileErrors, FullDiskFailsAnHdf5WriteAndKeepsThePreviousVersion) {
  ScratchDir dir;
  write_hdf5_atomically(dir / "m.h5", [](Hdf5File& f) { f.write("w", Tensor::full({4}, 1.0f)); });
  std::string error;
  {
    const FileSizeLimit limit(1 << 16);
    error = error_of([&] {
      write_hdf5_atomically(dir / "m.h5", [](Hdf5File& f) { f.write("w", Tensor::zeros({1 << 18})); });
    });
  }
  EXPECT_THAT(error, HasSubstr(dir / "m.h5.partial"));
  EXPECT_FALSE(fs::exists(dir / "m.h5.partial"));
  EXPECT_EQ(Hdf5File(dir / "m.h5", Hdf5File::Mode::Read).read("w").to_vector(), std::vector<float>(4, 1.0f));
}

}  // namespace
}  // namespace vdit
