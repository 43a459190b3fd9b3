#pragma once
// --device cpu|cuda|cuda:N, the one flag every computing command shares (DESIGN.md, "The
// command"). The default is the CPU; a CUDA device is checked here, before any work starts.
#include <string>

#include "autograd/device.h"
#include "tools/command.h"

namespace vdit::cli {

class DeviceFlag {
 public:
  void add_to(po::options_description& description);
  // The device asked for. UsageError (one line) for text parse_device rejects, for a CUDA
  // device in a build without CUDA, with no GPU visible, or past the visible ones.
  Device device() const;

 private:
  std::string text_ = "cpu";
};

}  // namespace vdit::cli
