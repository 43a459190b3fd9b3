#include "autograd/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#include "autograd/host_allocator.h"

namespace vdit {

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string to_string(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

const char* dtype_name(DType dtype) { return dtype == DType::F32 ? "float32" : "bfloat16"; }

float bf16_to_float(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

uint16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

namespace {

std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};

void count_allocation(int64_t bytes) {
  const int64_t live = g_live_bytes.fetch_add(bytes) + bytes;
  int64_t peak = g_peak_bytes.load();
  while (live > peak && !g_peak_bytes.compare_exchange_weak(peak, live)) {
  }
}

size_t element_size(DType dtype) { return dtype == DType::F32 ? sizeof(float) : sizeof(uint16_t); }

// CUDA storage: the backend's caching allocator keeps its own account (DeviceMemoryStats).
std::shared_ptr<TensorImpl> allocate_on_device(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = device;
  impl->owner = cuda_backend().allocate(static_cast<size_t>(numel(shape)) * element_size(dtype),
                                        device.index);
  impl->data = impl->owner.get();
  return impl;
}

std::shared_ptr<TensorImpl> allocate(const Shape& shape, DType dtype = DType::F32,
                                     Device device = Device::cpu()) {
  for (int64_t d : shape) VDIT_CHECK(d >= 0, "negative dimension in shape " << to_string(shape));
  if (device.is_cuda()) return allocate_on_device(shape, dtype, device);
  for (int64_t d : shape) VDIT_CHECK(d >= 0, "negative dimension in shape " << to_string(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  size_t bytes = static_cast<size_t>(numel(shape)) * element_size(dtype);
  const size_t rounded = bytes ? (bytes + 63) / 64 * 64 : 64;  // aligned_alloc wants a multiple of the alignment
  void* p = allocate_host(rounded);
  VDIT_CHECK(p != nullptr, "out of memory allocating " << bytes << " bytes for " << to_string(shape));
  impl->data = p;
  const int64_t counted = static_cast<int64_t>(rounded);
  count_allocation(counted);
  impl->owner = std::shared_ptr<void>(p, [counted](void* q) {
    g_live_bytes.fetch_sub(counted);
    free_host(q, static_cast<size_t>(counted));
  });
  return impl;
}

}  // namespace

TensorMemory tensor_memory() { return {g_live_bytes.load(), g_peak_bytes.load()}; }
void reset_tensor_memory_peak() { g_peak_bytes.store(g_live_bytes.load()); }

Tensor Tensor::empty(const Shape& shape) { return Tensor(allocate(shape)); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return Tensor(allocate(shape, dtype, device));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cuda())
    cuda_backend().fill(t.storage(), dtype, t.numel(), 0.0f, device.index);
  else
    std::memset(t.storage(), 0, static_cast<size_t>(t.storage_bytes()));
  return t;
}

int64_t Tensor::storage_bytes() const {
  return numel() * static_cast<int64_t>(element_size(dtype()));
}

Tensor Tensor::to(Device device) const {
  if (device == impl_->device) return *this;
  Tensor out = empty(shape(), dtype(), device);
  if (device.is_cuda() || impl_->device.is_cuda())
    cuda_backend().copy(out.storage(), device, storage(), impl_->device,
                        static_cast<size_t>(storage_bytes()));
  return out;
}

Tensor Tensor::zeros(const Shape& shape) {
  Tensor t = empty(shape);
  std::memset(t.data(), 0, static_cast<size_t>(t.numel()) * sizeof(float));
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = value;
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  VDIT_CHECK(static_cast<int64_t>(values.size()) == vdit::numel(shape),
             values.size() << " values do not fill shape " << to_string(shape));
  Tensor t = empty(shape);
  std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::borrow(const Shape& shape, DType dtype, void* data, std::shared_ptr<void> owner,
                      Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = device;
  impl->data = data;
  impl->owner = std::move(owner);
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int axis) const {
  int n = ndim();
  int a = axis < 0 ? axis + n : axis;
  VDIT_CHECK(a >= 0 && a < n, "axis " << axis << " out of range for shape " << to_string(shape()));
  return impl_->shape[a];
}

namespace {

// Host code must not dereference device storage: a CPU kernel reached with a CUDA tensor is a
// dispatch bug, reported instead of crashing.
void check_host(const TensorImpl& impl, const char* what) {
  VDIT_CHECK(impl.device.is_cpu(), what << " requested from a tensor of shape " << to_string(impl.shape)
                                        << " on " << to_string(impl.device)
                                        << "; copy it with to(cpu) first");
}

}  // namespace

float* Tensor::data() {
  check_host(*impl_, "host float32 data");
  VDIT_CHECK(impl_->dtype == DType::F32, "float32 data requested from a bfloat16 tensor");
  return static_cast<float*>(impl_->data);
}

const float* Tensor::data() const {
  check_host(*impl_, "host float32 data");
  VDIT_CHECK(impl_->dtype == DType::F32, "float32 data requested from a bfloat16 tensor");
  return static_cast<const float*>(impl_->data);
}

const uint16_t* Tensor::bf16_data() const {
  check_host(*impl_, "host bfloat16 data");
  VDIT_CHECK(impl_->dtype == DType::BF16, "bfloat16 data requested from a float32 tensor");
  return static_cast<const uint16_t*>(impl_->data);
}

float Tensor::item() const {
  VDIT_CHECK(numel() == 1, "item() of a tensor of shape " << to_string(shape()));
  if (is_cuda()) return to(Device::cpu()).item();
  return impl_->dtype == DType::F32 ? data()[0] : bf16_to_float(bf16_data()[0]);
}

std::vector<float> Tensor::to_vector() const {
  Tensor f = to(Device::cpu()).to_f32();
  return std::vector<float>(f.data(), f.data() + f.numel());
}

Tensor Tensor::to_f32() const {
  if (impl_->dtype == DType::F32) return *this;
  if (is_cuda()) {
    Tensor out = empty(shape(), DType::F32, device());
    cuda_backend().convert(storage(), DType::BF16, out.storage(), DType::F32, numel(), device().index);
    return out;
  }
  Tensor out = empty(shape());
  const uint16_t* src = bf16_data();
  float* dst = out.data();
  int64_t n = numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
  return out;
}

Tensor Tensor::to_bf16() const {
  if (impl_->dtype == DType::BF16) return *this;
  if (is_cuda()) {
    Tensor out = empty(shape(), DType::BF16, device());
    cuda_backend().convert(storage(), DType::F32, out.storage(), DType::BF16, numel(), device().index);
    return out;
  }
  Tensor out(allocate(shape(), DType::BF16));
  const float* src = data();
  uint16_t* dst = static_cast<uint16_t*>(out.impl()->data);
  int64_t n = numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  return out;
}

Tensor Tensor::clone() const {
  Tensor f = to_f32();
  if (is_cuda()) {
    if (f.storage() != storage()) return f;  // the widening already made a fresh copy
    Tensor out = empty(shape(), DType::F32, device());
    cuda_backend().copy(out.storage(), device(), f.storage(), device(),
                        static_cast<size_t>(storage_bytes()));
    return out;
  }
  Tensor out = empty(shape());
  std::memcpy(out.data(), f.data(), static_cast<size_t>(numel()) * sizeof(float));
  return out;
}

Tensor Tensor::detach() const {
  return borrow(shape(), dtype(), impl_->data, impl_->owner, impl_->device);
}

Tensor& Tensor::set_requires_grad(bool value) {
  VDIT_CHECK(!value || impl_->dtype == DType::F32 || is_cuda(),
             "a bfloat16 tensor on the CPU is frozen storage and cannot require a gradient");
  impl_->requires_grad = value;
  if (value && !impl_->slot)
    impl_->slot = std::make_shared<GradSlot>(GradSlot{shape(), nullptr, impl_->device});
  if (!value) impl_->slot.reset();
  return *this;
}

Tensor Tensor::grad() const {
  return impl_->slot && impl_->slot->grad ? Tensor(impl_->slot->grad) : Tensor();
}

void Tensor::zero_grad() const {
  if (impl_->slot) impl_->slot->grad.reset();
}

GradRef Tensor::grad_ref() const { return impl_->requires_grad ? impl_->slot : nullptr; }

float* GradSlot::buffer() {
  if (!grad) grad = Tensor::zeros(shape, DType::F32, device).impl_ptr();
  return static_cast<float*>(grad->data);
}

float* GradSlot::buffer_for_write(bool* fresh) {
  *fresh = !grad;
  if (!grad) grad = Tensor::empty(shape, DType::F32, device).impl_ptr();
  return static_cast<float*>(grad->data);
}

const float* GradSlot::get() const { return grad ? static_cast<const float*>(grad->data) : nullptr; }

}  // namespace vdit
