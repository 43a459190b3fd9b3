#pragma once
// Inputs given as files or directories of them (datasets, videos).
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace vdit {

// Files as given; each directory replaced by the regular files inside it that `wanted`
// accepts, sorted by name. Errors name a missing path, or a directory holding no `what`.
std::vector<std::string> expand_directories(const std::vector<std::string>& paths,
                                            const std::function<bool(const std::filesystem::path&)>& wanted,
                                            const std::string& what);

}  // namespace vdit
