#include "autograd/blas.h"

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "autograd/check.h"
#include "autograd/cpu_features.h"

namespace vdit::blas {

namespace {

// CBLAS enum values (cblas.h); declared here so the build needs no BLAS headers.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                         int, float, float*, int);
using CharFn = char* (*)();
using IntFn = int (*)();
using SetThreadsFn = void (*)(int);

struct OpenBlas {
  void* handle = nullptr;
  SgemmFn sgemm = nullptr;
  CharFn get_config = nullptr;
  CharFn get_corename = nullptr;
  Threading threading = Threading::Sequential;
  std::string path;
};

void* symbol(void* handle, const char* name, const std::string& path) {
  void* sym = dlsym(handle, name);
  VDIT_CHECK(sym != nullptr, "OpenBLAS library " << path << " has no symbol " << name);
  return sym;
}

// Where to look, best first. VDITKIT_OPENBLAS (a path) replaces the search. Otherwise the
// OpenMP build under the names distributions give it, then whatever the system's default is.
std::vector<std::string> candidates() {
  if (const char* chosen = std::getenv("VDITKIT_OPENBLAS"); chosen && *chosen) return {chosen};
  std::vector<std::string> names;
#if defined(__x86_64__)
  names.push_back("/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0");  // Debian, Ubuntu
#elif defined(__aarch64__)
  names.push_back("/usr/lib/aarch64-linux-gnu/openblas-openmp/libopenblas.so.0");
#endif
  names.push_back("libopenblaso.so.0");  // Fedora, EPEL: the OpenMP build's own name
  names.push_back("libopenblas.so.0");   // the default: any build
  names.push_back("libopenblas.so");
  return names;
}

OpenBlas open_library() {
  std::string core = preferred_core_type();
  // OpenBLAS reads OPENBLAS_CORETYPE once, in its constructor: it must be set before dlopen.
  if (!core.empty()) setenv("OPENBLAS_CORETYPE", core.c_str(), /*overwrite=*/0);
  OpenBlas lib;
  std::string tried;
  for (const std::string& name : candidates()) {
    lib.handle = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (lib.handle) {
      lib.path = name;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + name;
  }
  VDIT_CHECK(lib.handle != nullptr,
             "cannot load OpenBLAS (tried " << tried << "); install libopenblas0-openmp "
                                            << "(scripts/install-deps.sh) or set VDITKIT_OPENBLAS");
  lib.sgemm = reinterpret_cast<SgemmFn>(symbol(lib.handle, "cblas_sgemm", lib.path));
  lib.get_config = reinterpret_cast<CharFn>(symbol(lib.handle, "openblas_get_config", lib.path));
  lib.get_corename = reinterpret_cast<CharFn>(symbol(lib.handle, "openblas_get_corename", lib.path));
  auto get_parallel = reinterpret_cast<IntFn>(symbol(lib.handle, "openblas_get_parallel", lib.path));
  auto set_threads =
      reinterpret_cast<SetThreadsFn>(symbol(lib.handle, "openblas_set_num_threads", lib.path));
  lib.threading = static_cast<Threading>(get_parallel());
  if (lib.threading == Threading::OpenMP) {
    // One pool: BLAS gets the OpenMP team size, and inside our own parallel regions the OpenMP
    // build runs single-threaded, so the two never oversubscribe the cores.
    set_threads(omp_get_max_threads());
  } else {
    // A pthreads build keeps its own threads, which spin (sched_yield) against our idle OpenMP
    // threads: 3-5x slower end to end (issue 11). It cannot join our pool, so it runs
    // single-threaded and sgemm below splits C across the OpenMP team, one single-threaded
    // call per thread: one pool again, at close to the OpenMP build's speed on large GEMMs.
    set_threads(1);
    std::cerr << "vditkit: warning: " << lib.path << " is the " << threading_name(lib.threading)
              << " build of OpenBLAS, not the OpenMP one; it runs single-threaded under vditkit's "
                 "OpenMP threads (install libopenblas0-openmp for full speed)\n";
  }
  return lib;
}

const OpenBlas& library() {
  static OpenBlas lib = open_library();
  return lib;
}

void call_sgemm(const OpenBlas& lib, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                float* c, int64_t ldc) {
  lib.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans,
            static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
            static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// For a BLAS that runs single-threaded (see open_library): C split into one slab of rows (or
// columns, when C is wider than tall) per OpenMP thread. Small products and calls from inside
// our own parallel regions run whole, as the OpenMP build would run them.
void split_sgemm(const OpenBlas& lib, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                 float beta, float* c, int64_t ldc) {
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || 2.0 * m * n * k < 1e6) {
    call_sgemm(lib, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  const int64_t slab = (extent + threads - 1) / threads;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t begin = t * slab, size = std::min(extent, begin + slab) - begin;
    if (size <= 0) continue;
    if (by_rows)  // rows of op(A): rows of A, or columns when A is stored transposed
      call_sgemm(lib, trans_a, trans_b, size, n, k, alpha, a + (trans_a ? begin : begin * lda), lda,
                 b, ldb, beta, c + begin * ldc, ldc);
    else  // columns of op(B): columns of B, or rows when B is stored transposed
      call_sgemm(lib, trans_a, trans_b, m, size, k, alpha, a, lda, b + (trans_b ? begin * ldb : begin),
                 ldb, beta, c + begin, ldc);
  }
}

}  // namespace

std::string preferred_core_type() { return cpu_features().avx512 ? "SkylakeX" : ""; }

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc) {
  if (m == 0 || n == 0) return;
  const OpenBlas& lib = library();
  if (lib.threading == Threading::OpenMP)
    call_sgemm(lib, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    split_sgemm(lib, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

const char* threading_name(Threading threading) {
  switch (threading) {
    case Threading::Sequential: return "sequential";
    case Threading::Pthreads: return "pthreads";
    case Threading::OpenMP: return "OpenMP";
  }
  return "unknown";
}

Threading threading() { return library().threading; }
std::string core_name() { return library().get_corename(); }
std::string config() { return library().get_config(); }
std::string library_path() { return library().path; }

std::string build() {
  return std::string(threading_name(threading())) + " build, core " + core_name() + ", " +
         library_path() + " (" + config() + ")";
}

}  // namespace vdit::blas
