// --device on the commands that compute (tools/device_flag.h), on any machine: text that is no
// device, a GPU in a build without CUDA or on a machine without one, and an ordinal past the
// visible devices are each a one-line usage error before any file is read. The files named do
// not exist: the device is checked first.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "autograd/cuda_backend.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

const std::vector<std::string> kCommands = {
    "forward --model m.h5 --input in.h5 --output out.h5",
    "retrain --model m.h5 --data d.h5 --out run",
    "tune-temperature --model m.h5 --data d.h5 --out run",
    "sample --model m.h5 --out x.h5",
    "diagnose --model m.h5 --data d.h5 --out report",
};

void expect_one_line_usage_error(const std::string& args, const std::string& text) {
  const testing::CommandResult r = testing::run_vditkit(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(text), std::string::npos) << args << "\n" << r.output;
}

TEST(DeviceFlag, TextThatIsNoDevice) {
  for (const std::string& command : kCommands)
    expect_one_line_usage_error(command + " --device gpu", "--device: bad device 'gpu': expected cpu, cuda or cuda:N");
}

TEST(DeviceFlag, CudaWithoutAGpu) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is visible: tests/cuda/test_cuda_commands.cpp runs the commands on it";
#if VDITKIT_CUDA
  const std::string why = "--device cuda: no CUDA device is visible";
#else
  const std::string why = "--device cuda: this vditkit was built without CUDA";
#endif
  for (const std::string& command : kCommands) expect_one_line_usage_error(command + " --device cuda", why);
}

TEST(DeviceFlag, OrdinalPastTheVisibleDevices) {
#if VDITKIT_CUDA
  const std::string why = cuda_available() ? " visible (cuda:0" : "no CUDA device is visible";
#else
  const std::string why = "this vditkit was built without CUDA";
#endif
  for (const std::string& command : kCommands) expect_one_line_usage_error(command + " --device cuda:99", "--device cuda:99: ");
  expect_one_line_usage_error(kCommands[0] + " --device cuda:99", why);
}

}  // namespace
}  // namespace vdit
