#include "autograd/device.h"

#include <cctype>

#include "autograd/check.h"

namespace vdit {

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  const std::string prefix = "cuda:";
  if (text.starts_with(prefix) && text.size() > prefix.size() && text.size() <= prefix.size() + 3) {
    int index = 0;
    for (size_t i = prefix.size(); i < text.size(); ++i) {
      VDIT_CHECK(std::isdigit(static_cast<unsigned char>(text[i])),
                 "bad device '" << text << "': expected cpu, cuda or cuda:N");
      index = index * 10 + (text[i] - '0');
    }
    return Device::cuda(index);
  }
  VDIT_FAIL("bad device '" << text << "': expected cpu, cuda or cuda:N");
}

std::string to_string(Device device) {
  return device.is_cpu() ? "cpu" : "cuda:" + std::to_string(device.index);
}

}  // namespace vdit
