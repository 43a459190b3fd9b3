#pragma once
// An exception must not leave an OpenMP region: the runtime calls std::terminate, so a failed
// check or allocation inside a parallel loop would abort the program instead of reaching the
// one-line error at the command line. Inside the region, each piece of work runs through
// run(), which keeps the first exception and skips the work left once one was caught; after
// the region, rethrow() raises it as an ordinary error.
//
//   ParallelErrors errors;
//   #pragma omp parallel for
//   for (int64_t i = 0; i < n; ++i) errors.run([&] { body(i); });
//   errors.rethrow();
//
// A worksharing loop (`omp for`) inside a region must still be reached by every thread: put
// run() inside its iterations, never around it.
#include <atomic>
#include <exception>
#include <mutex>

namespace vdit {

class ParallelErrors {
 public:
  template <class Fn>
  void run(Fn&& fn) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      fn();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // After the region: rethrows the first exception caught, if any.
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace vdit
