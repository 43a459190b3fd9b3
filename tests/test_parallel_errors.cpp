// An exception inside an OpenMP region would call std::terminate; ParallelErrors carries the
// first one out of the region as an ordinary error, and the work left is skipped.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <new>
#include <vector>

#include "autograd/check.h"
#include "autograd/parallel_errors.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

TEST(ParallelErrors, FailureInAParallelLoopBecomesAnOrdinaryError) {
  constexpr int64_t n = 100000;
  ParallelErrors errors;
  std::atomic<int64_t> ran{0};
#pragma omp parallel for schedule(static, 1)
  for (int64_t i = 0; i < n; ++i)
    errors.run([&] {
      ++ran;
      if (i == 37) VDIT_FAIL("element " << i << " failed");
    });
  EXPECT_TRUE(errors.failed());
  EXPECT_EQ(testing::error_of([&] { errors.rethrow(); }), "element 37 failed");
  EXPECT_LT(ran.load(), n) << "work after the failure was not skipped";
}

// The pattern of the attention kernels: per-thread buffers allocated in the region, then a
// worksharing loop every thread must still reach.
TEST(ParallelErrors, AllocationFailureInARegionIsAnError) {
  ParallelErrors errors;
#pragma omp parallel
  {
    std::vector<float> buffer;
    errors.run([&] {
      if (omp_get_thread_num() == 0) throw std::bad_alloc();  // as an allocation beyond memory does
      buffer.resize(64);
    });
#pragma omp for
    for (int i = 0; i < 64; ++i) errors.run([&] { buffer.at(static_cast<size_t>(i)) = 1.0f; });
  }
  EXPECT_TRUE(errors.failed());
  EXPECT_THROW(errors.rethrow(), std::bad_alloc);
}

TEST(ParallelErrors, NothingToRethrowWhenAllWorkSucceeds) {
  ParallelErrors errors;
  std::atomic<int> ran{0};
#pragma omp parallel for
  for (int i = 0; i < 1000; ++i) errors.run([&] { ++ran; });
  EXPECT_FALSE(errors.failed());
  EXPECT_NO_THROW(errors.rethrow());
  EXPECT_EQ(ran.load(), 1000);
}

}  // namespace
}  // namespace vdit
