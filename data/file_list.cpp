#include "data/file_list.h"

#include <algorithm>

#include "autograd/check.h"

namespace vdit {

namespace fs = std::filesystem;

std::vector<std::string> expand_directories(const std::vector<std::string>& paths,
                                            const std::function<bool(const fs::path&)>& wanted,
                                            const std::string& what) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    VDIT_CHECK(fs::exists(path), path << ": no such file or directory");
    if (!fs::is_directory(path)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> inside;
    for (const fs::directory_entry& e : fs::directory_iterator(path))
      if (e.is_regular_file() && wanted(e.path())) inside.push_back(e.path().string());
    VDIT_CHECK(!inside.empty(), path << ": directory holds no " << what);
    std::sort(inside.begin(), inside.end());
    files.insert(files.end(), inside.begin(), inside.end());
  }
  return files;
}

}  // namespace vdit
