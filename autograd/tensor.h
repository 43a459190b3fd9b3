#pragma once
// Tensor: a shape over contiguous storage, shared by every copy of the handle.
//
// On the CPU, compute is float32 and storage may also be bf16, for frozen weights only: such a
// tensor can never require a gradient and is widened to float32 where an op reads it. On a CUDA
// device, activations are bf16 and may require gradients (see the README's precision table).
// Gradients are float32 on every device. Storage may be owned (aligned heap, or the CUDA
// caching allocator) or borrowed (a memory-mapped file), kept alive by `owner`.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "autograd/device.h"

namespace vdit {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);

enum class DType : uint8_t { F32, BF16 };
const char* dtype_name(DType dtype);

float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);  // round to nearest even, as PyTorch does

struct TensorImpl;

// Where a tensor's gradient accumulates. It lives apart from the tensor's values so that a
// backward closure can add into an input's gradient without keeping the input's data alive.
struct GradSlot {
  Shape shape;
  std::shared_ptr<TensorImpl> grad;  // float32, allocated (as zeros) by the first write
  Device device;                     // where `grad` lives: the tensor's own device

  float* buffer();                  // for accumulation: allocates (as zeros) on first use
  // For kernels that can either overwrite or accumulate (GEMM's beta): the buffer, and whether
  // it is new and uninitialised, in which case the caller must overwrite every element.
  float* buffer_for_write(bool* fresh);
  const float* get() const;         // null while no gradient has flowed here
};
using GradRef = std::shared_ptr<GradSlot>;

struct TensorImpl {
  Shape shape;
  DType dtype = DType::F32;
  Device device;
  void* data = nullptr;
  std::shared_ptr<void> owner;  // keeps `data` alive
  bool requires_grad = false;
  GradRef slot;  // set while requires_grad
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Owned float32 storage, 64-byte aligned. `empty` leaves the values undefined.
  static Tensor empty(const Shape& shape);
  static Tensor zeros(const Shape& shape);
  // Owned storage of any dtype on any device (CUDA storage from the caching allocator).
  static Tensor empty(const Shape& shape, DType dtype, Device device);
  static Tensor zeros(const Shape& shape, DType dtype, Device device);
  static Tensor full(const Shape& shape, float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  // Borrowed storage, no copy: `owner` keeps `data` alive (e.g. a mapped file).
  static Tensor borrow(const Shape& shape, DType dtype, void* data, std::shared_ptr<void> owner,
                       Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  int ndim() const { return static_cast<int>(impl_->shape.size()); }
  int64_t size(int axis) const;  // negative axes count from the end
  int64_t numel() const { return vdit::numel(impl_->shape); }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->device; }
  bool is_cuda() const { return impl_->device.is_cuda(); }

  float* data();  // float32 host tensors only
  const float* data() const;
  const uint16_t* bf16_data() const;  // bf16 host tensors only
  // The storage of any tensor, for kernels of the tensor's own device.
  void* storage() const { return impl_->data; }
  int64_t storage_bytes() const;
  float item() const;                 // one-element tensors only; copies from a device
  std::vector<float> to_vector() const;  // copies from a device

  // A copy on `device` with the same dtype and values, no autograd history (a leaf); this
  // tensor itself when it is already there. The only way data crosses devices.
  Tensor to(Device device) const;

  // float32 view of the values: this tensor itself, or a widened copy of a bf16 one.
  Tensor to_f32() const;
  // bf16 storage of the values (round to nearest even): this tensor itself, or a narrowed
  // copy of a float32 one. For frozen weights only: the copy cannot require a gradient.
  Tensor to_bf16() const;
  // A new owned float32 tensor on the same device with the same values and no history.
  Tensor clone() const;
  // Same storage, no gradient, no history (a leaf).
  Tensor detach() const;

  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& set_requires_grad(bool value);
  Tensor grad() const;  // undefined until a backward pass reaches this tensor
  // Drops the accumulated gradient. Const like every handle operation on shared state: the
  // gradient lives with the storage, not with this handle.
  void zero_grad() const;
  // The slot a backward closure adds this tensor's gradient into; null when none is needed.
  GradRef grad_ref() const;

  // Reverse-mode pass from this scalar through everything recorded on the tape since it was
  // last cleared; gradients accumulate into every tensor that requires one.
  void backward() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Bytes of tensor storage this process has allocated (borrowed storage not counted): live now,
// and the most live at once since the last reset. Memory tests and benchmarks read these.
struct TensorMemory {
  int64_t live_bytes = 0;
  int64_t peak_bytes = 0;
};
TensorMemory tensor_memory();
void reset_tensor_memory_peak();

}  // namespace vdit
