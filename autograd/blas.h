#pragma once
// The one door to BLAS. OpenBLAS is opened at run time so that (1) the OpenMP build is loaded
// whatever the system's default libopenblas.so.0 is (Debian makes the pthread build the default
// as soon as it is installed), and (2) on AVX-512 machines its SkylakeX kernels are selected
// before the library's constructor runs (0.3.21 detects some AVX-512 CPUs as Haswell and runs
// at half speed). Everything else in vditkit calls sgemm here.
#include <cstdint>
#include <string>

namespace vdit::blas {

// Row-major C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C with leading dimensions.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc);

// How the loaded library runs threads: openblas_get_parallel()'s value.
enum class Threading { Sequential = 0, Pthreads = 1, OpenMP = 2 };
Threading threading();
const char* threading_name(Threading threading);  // "sequential", "pthreads", "OpenMP"

std::string core_name();  // the kernel OpenBLAS runs, e.g. "SkylakeX" or "Haswell"
std::string config();     // openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
std::string library_path();  // the file loaded, as it was opened
// One line for headers and --version: "OpenMP build, core SkylakeX, <path> (<config>)".
std::string build();
// The core type chosen for this CPU when the user has not set OPENBLAS_CORETYPE, or "" to
// leave OpenBLAS's own detection alone.
std::string preferred_core_type();

}  // namespace vdit::blas
