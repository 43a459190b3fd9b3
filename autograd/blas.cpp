#include "autograd/blas.h"

#include <dlfcn.h>
#include <omp.h>

#include <cstdlib>
#include <mutex>

#include "autograd/check.h"

namespace vdit::blas {

namespace {

// CBLAS enum values (cblas.h); declared here so the build needs no BLAS headers.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                         int, float, float*, int);
using CharFn = char* (*)();
using SetThreadsFn = void (*)(int);

struct OpenBlas {
  void* handle = nullptr;
  SgemmFn sgemm = nullptr;
  CharFn get_config = nullptr;
  CharFn get_corename = nullptr;
  std::string path;
};

void* symbol(void* handle, const char* name, const std::string& path) {
  void* sym = dlsym(handle, name);
  VDIT_CHECK(sym != nullptr, "OpenBLAS library " << path << " has no symbol " << name);
  return sym;
}

OpenBlas open_library() {
  std::string core = preferred_core_type();
  // OpenBLAS reads OPENBLAS_CORETYPE once, in its constructor: it must be set before dlopen.
  if (!core.empty()) setenv("OPENBLAS_CORETYPE", core.c_str(), /*overwrite=*/0);
  OpenBlas lib;
  for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
    lib.handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (lib.handle) {
      lib.path = name;
      break;
    }
  }
  VDIT_CHECK(lib.handle != nullptr,
             "cannot load OpenBLAS (libopenblas.so.0): " << dlerror()
                 << "; install libopenblas0-openmp (scripts/install-deps.sh)");
  lib.sgemm = reinterpret_cast<SgemmFn>(symbol(lib.handle, "cblas_sgemm", lib.path));
  lib.get_config = reinterpret_cast<CharFn>(symbol(lib.handle, "openblas_get_config", lib.path));
  lib.get_corename = reinterpret_cast<CharFn>(symbol(lib.handle, "openblas_get_corename", lib.path));
  auto set_threads =
      reinterpret_cast<SetThreadsFn>(symbol(lib.handle, "openblas_set_num_threads", lib.path));
  // One pool: BLAS gets the OpenMP team size, and inside our own parallel regions the OpenMP
  // build of OpenBLAS runs single-threaded, so the two never oversubscribe the cores.
  set_threads(omp_get_max_threads());
  return lib;
}

const OpenBlas& library() {
  static OpenBlas lib = open_library();
  return lib;
}

}  // namespace

std::string preferred_core_type() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool skylakex = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  return skylakex ? "SkylakeX" : "";
#else
  return "";
#endif
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc) {
  if (m == 0 || n == 0) return;
  library().sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans,
                  static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                  static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

std::string core_name() { return library().get_corename(); }
std::string config() { return library().get_config(); }
std::string library_path() { return library().path; }

}  // namespace vdit::blas
