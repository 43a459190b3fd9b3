#include "tools/device_flag.h"

#include "autograd/cuda_backend.h"

namespace vdit::cli {

void DeviceFlag::add_to(po::options_description& d) {
  d.add_options()("device", po::value(&text_)->default_value(text_),
                  "cpu, cuda or cuda:N (a GPU: frozen weights bf16, activations bf16, fp32 accumulation)");
}

Device DeviceFlag::device() const {
  Device device;
  try {
    device = parse_device(text_);
  } catch (const Error& e) {
    throw UsageError("--device: " + std::string(e.what()));
  }
  if (device.is_cpu()) return device;
  const std::string flag = "--device " + text_ + ": ";
  try {
    const int visible = cuda_backend().device_count();
    if (visible == 0) throw UsageError(flag + "no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
    if (device.index >= visible)
      throw UsageError(flag + "only " + std::to_string(visible) + " CUDA device" + (visible == 1 ? "" : "s") +
                       " visible (cuda:0" + (visible == 1 ? "" : " to cuda:" + std::to_string(visible - 1)) + ")");
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {  // this build has no CUDA backend
    throw UsageError(flag + e.what());
  }
  return device;
}

}  // namespace vdit::cli
