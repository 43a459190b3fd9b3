#pragma once
// Where a tensor's storage lives: host memory or one CUDA device. Copies between devices are
// always explicit (Tensor::to); an op over inputs on different devices is an error.
#include <cstdint>
#include <string>

namespace vdit {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // the CUDA ordinal; 0 for the CPU

  // Not an aggregate, so that a braced shape such as {2, 3} never reads as a Device.
  constexpr Device() = default;
  constexpr Device(DeviceType type_, int index_) : type(type_), index(index_) {}

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& other) const = default;
};

// "cpu", "cuda" (= cuda:0) or "cuda:N"; anything else is an error naming the text.
Device parse_device(const std::string& text);
std::string to_string(Device device);

}  // namespace vdit
