// Tensor storage: shapes, owned and borrowed memory, bf16 frozen storage and its rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "autograd/check.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "autograd/tensor.h"
#include "tests/autograd_testing.h"

namespace vdit {
namespace {

using testing::bit_pattern;

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

TEST(Tensor, ShapeHelpers) {
  EXPECT_EQ(numel({}), 1);
  EXPECT_EQ(numel({2, 3, 5}), 30);
  EXPECT_EQ(numel({4, 0, 2}), 0);
  EXPECT_EQ(to_string({2, 3, 5}), "[2, 3, 5]");
  EXPECT_EQ(to_string(Shape{}), "[]");
}

TEST(Tensor, FactoriesFillValues) {
  EXPECT_EQ(Tensor::zeros({2, 3}).to_vector(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(Tensor::full({3}, 2.5f).to_vector(), std::vector<float>(3, 2.5f));
  const Tensor t = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Tensor::full({}, 7.0f).item(), 7.0f);
}

TEST(Tensor, RejectsInconsistentShapesAndAxes) {
  EXPECT_THROW(Tensor::from_vector({2, 2}, {1, 2, 3}), Error);
  EXPECT_THROW(Tensor::empty({2, -1}), Error);
  const Tensor t = Tensor::zeros({2, 3});
  EXPECT_EQ(t.size(-1), 3);
  EXPECT_THROW(t.size(2), Error);
  EXPECT_THROW(t.item(), Error);
}

TEST(Tensor, StorageIsSixtyFourByteAligned) {
  for (int64_t n : {1, 3, 17, 1000})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(Tensor::empty({n}).data()) % 64, 0u) << n;
}

TEST(Tensor, CloneCopiesAndDetachShares) {
  Tensor t = Tensor::from_vector({3}, {1, 2, 3});
  t.set_requires_grad(true);
  const Tensor copy = t.clone();
  const Tensor view = t.detach();
  EXPECT_FALSE(copy.requires_grad());
  EXPECT_FALSE(view.requires_grad());
  t.data()[0] = 9.0f;
  EXPECT_EQ(copy.to_vector()[0], 1.0f);
  EXPECT_EQ(view.to_vector()[0], 9.0f);
}

TEST(Tensor, BorrowedStorageOutlivesTheHandleThatMadeIt) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{4, 5, 6});
  std::weak_ptr<std::vector<float>> watch = owner;
  Tensor t = Tensor::borrow({3}, DType::F32, owner->data(), owner);
  owner.reset();
  EXPECT_EQ(t.to_vector(), (std::vector<float>{4, 5, 6}));
  t = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Tensor, MemoryAccountingCountsLiveOwnedStorage) {
  const int64_t before = tensor_memory().live_bytes;
  {
    const Tensor t = Tensor::empty({100});  // 400 bytes, rounded up to 448
    EXPECT_EQ(tensor_memory().live_bytes - before, 448);
    EXPECT_GE(tensor_memory().peak_bytes, tensor_memory().live_bytes);
  }
  EXPECT_EQ(tensor_memory().live_bytes, before);
}

TEST(Bf16, WideningIsExact) {
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc040), -3.0f);
  EXPECT_EQ(float_bits(bf16_to_float(0x3f81)), 0x3f810000u);
}

TEST(Bf16, RoundsToNearestEven) {
  struct Case {
    uint32_t f32;
    uint16_t bf16;
  };
  const Case cases[] = {
      {0x3f800000u, 0x3f80},  // exact
      {0x3f807fffu, 0x3f80},  // below half: down
      {0x3f808001u, 0x3f81},  // above half: up
      {0x3f808000u, 0x3f80},  // half, even below: stays
      {0x3f818000u, 0x3f82},  // half, odd below: up to even
      {0xbf818000u, 0xbf82},  // the same for negatives
      {0x7f7fffffu, 0x7f80},  // the largest float rounds to infinity, as in PyTorch
      {0x7f800000u, 0x7f80},  // infinity stays
      {0x00000001u, 0x0000},  // the smallest subnormal rounds to zero
  };
  for (const Case& c : cases)
    EXPECT_EQ(float_to_bf16(float_from_bits(c.f32)), c.bf16) << std::hex << c.f32;
}

TEST(Bf16, NaNStaysNaN) {
  for (uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xffffffffu})  // quiet, signalling, negative
    EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(float_from_bits(nan))))) << std::hex << nan;
}

TEST(Bf16, TensorIsFrozenStorage) {
  Tensor w = Tensor::from_vector({2}, {1.0f, -2.0f}).to_bf16();
  EXPECT_EQ(w.dtype(), DType::BF16);
  EXPECT_THROW(w.set_requires_grad(true), Error);
  EXPECT_FALSE(w.requires_grad());
  EXPECT_THROW(w.data(), Error);
  EXPECT_EQ(w.to_f32().to_vector(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(w.clone().dtype(), DType::F32);
}

TEST(Bf16, NarrowingRoundsEveryElementToNearestEven) {
  Rng rng(5);
  const Tensor x = rng.normal_tensor({4, 33});
  const Tensor narrow = x.to_bf16();
  const std::vector<float> values = x.to_vector();
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(narrow.bf16_data()[i], float_to_bf16(values[i])) << i;
  EXPECT_EQ(narrow.to_bf16().impl(), narrow.impl());  // already bf16: the same tensor
}

TEST(Bf16, LinearWithBf16WeightEqualsItsWidenedCopy) {
  Rng rng(7);
  const Tensor x = rng.normal_tensor({5, 6});
  const Tensor w = rng.normal_tensor({3, 6}).to_bf16();
  const Tensor b = rng.normal_tensor({3});
  EXPECT_EQ(bit_pattern(linear(x, w, b)), bit_pattern(linear(x, w.to_f32(), b)));
}

}  // namespace
}  // namespace vdit
