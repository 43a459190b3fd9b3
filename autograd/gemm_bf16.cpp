#include "autograd/gemm_bf16.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <unordered_map>

#include "autograd/check.h"
#include "autograd/tensor.h"

namespace vdit::gemm {

namespace {

using dnnl::memory;
using DataType = memory::data_type;

const dnnl::engine& engine() {
  static const dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  return cpu;
}

// oneDNN runs on the OpenMP runtime (Debian's build: DNNL_CPU_RUNTIME OMP), so it shares the
// team OpenBLAS and our loops use. Primitives are made per call from their description: oneDNN
// keeps them in its own primitive cache (1,024 by default, ONEDNN_PRIMITIVE_CACHE_CAPACITY), and
// a training step has a few dozen shapes, so from the second step on every creation is a cache
// hit (ONEDNN_VERBOSE=1 prints "create:cache_hit" for them).
void execute(const dnnl::primitive& primitive, const std::unordered_map<int, memory>& args) {
  thread_local dnnl::stream stream(engine());
  primitive.execute(stream, args);
  stream.wait();
}

memory::desc matrix(int64_t rows, int64_t cols, DataType type, int64_t row_stride, int64_t col_stride) {
  return memory::desc({rows, cols}, type, {row_stride, col_stride});
}

}  // namespace

const char* bf16_path_name(Bf16Path path) {
  return path == Bf16Path::Native ? "native bf16 (oneDNN)" : "widen to fp32 (OpenBLAS sgemm)";
}

Bf16Path choose_bf16_path(const CpuFeatures& cpu, const char* env_value) {
  const std::string wanted = env_value ? env_value : "";
  if (wanted == "0") return Bf16Path::Widen;
  if (cpu.amx_bf16) return Bf16Path::Native;
  // AVX512-BF16 alone only when asked: on a Xeon (Emerald Rapids, AMX not exposed) oneDNN
  // 2.6.3's avx512_core_bf16 matmul ran at 0.5-0.6x of OpenBLAS's float32 sgemm (README,
  // "bf16 products"), so there the float32 path is the faster one.
  return wanted == "1" && cpu.avx512_bf16 ? Bf16Path::Native : Bf16Path::Widen;
}

Bf16Path bf16_path() {
  static const Bf16Path path = choose_bf16_path(cpu_features(), std::getenv("VDITKIT_CPU_BF16"));
  return path;
}

void gemm_bf16(bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  VDIT_CHECK(beta == 0.0f || beta == 1.0f, "gemm_bf16: beta must be 0 or 1, got " << beta);
  if (m == 0 || n == 0) return;
  try {
    // A narrowed to bf16 once (round to nearest even), into storage from the tensor cache.
    const Tensor a_bf16 = Tensor::empty({(m * k + 1) / 2});
    const memory a_f32_mem(matrix(m, k, DataType::f32, lda, 1), engine(), const_cast<float*>(a));
    const memory a_mem(matrix(m, k, DataType::bf16, k, 1), engine(), const_cast<float*>(a_bf16.data()));
    execute(dnnl::reorder(a_f32_mem, a_mem), {{DNNL_ARG_FROM, a_f32_mem}, {DNNL_ARG_TO, a_mem}});

    const memory::desc b_desc = trans_b ? matrix(k, n, DataType::bf16, 1, ldb) : matrix(k, n, DataType::bf16, ldb, 1);
    const memory b_mem(b_desc, engine(), const_cast<uint16_t*>(b));
    const memory c_mem(matrix(m, n, DataType::f32, ldc, 1), engine(), c);
    dnnl::primitive_attr attr;
    if (beta == 1.0f) {  // accumulate into C: oneDNN's sum post-op, C = A B + C
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_mem.get_desc(), b_desc, c_mem.get_desc()), attr, engine());
    execute(dnnl::matmul(pd), {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
  } catch (const dnnl::error& e) {
    VDIT_FAIL("oneDNN bf16 matmul [" << m << ", " << k << "] x [" << k << ", " << n << "]"
                                     << (trans_b ? " (B transposed)" : "") << " failed: " << e.what());
  }
}

}  // namespace vdit::gemm
