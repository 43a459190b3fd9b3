#include "autograd/cuda/cublaslt.h"

#include <cublasLt.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "autograd/cuda/allocator.h"
#include "autograd/cuda/memory_kernels.h"
#include "autograd/cuda/runtime.h"

#define VDIT_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                            \
    const cublasStatus_t vdit_cublas_status_ = (call);                                            \
    VDIT_CHECK(vdit_cublas_status_ == CUBLAS_STATUS_SUCCESS,                                      \
               "cuBLASLt error: " << cublasLtGetStatusString(vdit_cublas_status_) << " (" #call ")"); \
  } while (0)

namespace vdit::cuda {

namespace {

// Hopper's kernels want up to 32 MiB of workspace (cuBLAS's own recommendation).
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType_t cuda_type(DType dtype) { return dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }

// The largest power of two (up to 256) dividing the address: the heuristic's algorithm may
// assume it, so it is part of the cache key.
int64_t alignment(const void* p) {
  const auto bits = reinterpret_cast<uintptr_t>(p);
  return bits == 0 ? 256 : static_cast<int64_t>(std::min<uintptr_t>(bits & (~bits + 1), 256));
}

using Key = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, DType, bool,
                       int64_t, int64_t, int64_t, int64_t, int64_t>;

Key key_of(const GemmArgs& g, int device) {
  const int64_t align = std::min({alignment(g.a), alignment(g.b), alignment(g.c),
                                  g.bias ? alignment(g.bias) : int64_t{256}});
  return {device, g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.c_dtype, g.bias != nullptr,
          g.batch, g.stride_a, g.stride_b, g.stride_c, align};
}

cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                              int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  VDIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    VDIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    VDIT_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
  return l;
}

// One shape's descriptors and chosen algorithm. cuBLASLt is column-major: the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T, so B is cuBLASLt's
// first operand and A its second, each stored as the transpose of the row-major view.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};

  Plan(const GemmArgs& g, cublasLtHandle_t handle, int64_t align) {
    VDIT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    VDIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
    VDIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
    if (g.bias) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      VDIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
      // The heuristic reads the pointer's alignment; matmul() sets the real one per call.
      VDIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
    }
    first = g.trans_b ? layout(CUDA_R_16BF, g.k, g.n, g.ldb, g.batch, g.stride_b)
                      : layout(CUDA_R_16BF, g.n, g.k, g.ldb, g.batch, g.stride_b);
    second = g.trans_a ? layout(CUDA_R_16BF, g.m, g.k, g.lda, g.batch, g.stride_a)
                       : layout(CUDA_R_16BF, g.k, g.m, g.lda, g.batch, g.stride_a);
    out = layout(cuda_type(g.c_dtype), g.n, g.m, g.ldc, g.batch, g.stride_c);

    cublasLtMatmulPreference_t pref = nullptr;
    VDIT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t workspace = kWorkspaceBytes;
    const uint32_t align32 = static_cast<uint32_t>(align);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace);
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      cublasLtMatmulPreferenceSetAttribute(pref, attr, &align32, sizeof align32);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(handle, desc, first, second, out, out, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    VDIT_CHECK(status == CUBLAS_STATUS_SUCCESS && found > 0,
               "cuBLASLt has no algorithm for the bf16 GEMM [" << g.m << ", " << g.k << "] x [" << g.k << ", "
                                                              << g.n << "] (batch " << g.batch << ", output "
                                                              << dtype_name(g.c_dtype) << "): "
                                                              << cublasLtGetStatusString(status));
    algo = result.algo;
  }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    cublasLtMatrixLayoutDestroy(out);
    cublasLtMatrixLayoutDestroy(second);
    cublasLtMatrixLayoutDestroy(first);
    cublasLtMatmulDescDestroy(desc);
  }
};

// Per device: the handle, the workspace (held for the process's life) and the plans by shape.
struct DeviceState {
  cublasLtHandle_t handle = nullptr;
  std::shared_ptr<void> workspace;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

std::mutex g_mutex;

DeviceState& state(int device) {
  static std::vector<std::unique_ptr<DeviceState>>* states = new std::vector<std::unique_ptr<DeviceState>>;
  if (static_cast<int>(states->size()) <= device) states->resize(device + 1);
  auto& s = (*states)[device];
  if (!s) {
    auto fresh = std::make_unique<DeviceState>();
    VDIT_CUBLAS_CHECK(cublasLtCreate(&fresh->handle));
    fresh->workspace = allocate(kWorkspaceBytes, device);
    s = std::move(fresh);
  }
  return *s;
}

// k = 0: the product is zero. Only the contiguous, bias-free overwrite has a use (an empty
// batch's weight gradient); it is a fill.
void empty_product(const GemmArgs& g, int device) {
  VDIT_CHECK(g.bias == nullptr && g.ldc == g.n && (g.batch == 1 || g.stride_c == g.m * g.n),
             "GEMM with inner size 0 and a bias or a strided output");
  if (g.beta == 0.0f) fill(g.c, g.c_dtype, g.batch * g.m * g.n, 0.0f, device);
}

}  // namespace

void gemm(const GemmArgs& g, int device) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) return empty_product(g, device);
  DeviceGuard guard(device);
  std::lock_guard<std::mutex> lock(g_mutex);  // the plan's descriptor is updated per call
  DeviceState& s = state(device);
  const Key key = key_of(g, device);
  auto it = s.plans.find(key);
  if (it == s.plans.end()) it = s.plans.emplace(key, std::make_unique<Plan>(g, s.handle, std::get<15>(key))).first;
  Plan& plan = *it->second;
  if (g.bias)
    VDIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
  const float alpha = 1.0f;
  VDIT_CUBLAS_CHECK(cublasLtMatmul(s.handle, plan.desc, &alpha, g.b, plan.first, g.a, plan.second, &g.beta, g.c,
                                   plan.out, g.c, plan.out, &plan.algo, s.workspace.get(), kWorkspaceBytes,
                                   stream(device)));
}

double time_bf16_gemm(int64_t m, int64_t n, int64_t k, int repeats, int device) {
  const Device where = Device::cuda(device);
  const Tensor a = Tensor::empty({m, k}, DType::BF16, where), b = Tensor::empty({k, n}, DType::BF16, where);
  const Tensor c = Tensor::empty({m, n}, DType::BF16, where);
  // Small constants: the sums stay finite, and tensor cores take the same time for any value.
  fill(a.storage(), DType::BF16, a.numel(), 0.01f, device);
  fill(b.storage(), DType::BF16, b.numel(), 0.01f, device);
  GemmArgs g;
  g.m = m, g.n = n, g.k = k;
  g.a = static_cast<const __nv_bfloat16*>(a.storage()), g.lda = k;
  g.b = static_cast<const __nv_bfloat16*>(b.storage()), g.ldb = n;
  g.c = c.storage(), g.ldc = n;
  gemm(g, device);  // warm-up: plan, heuristic, clocks
  DeviceGuard guard(device);
  cudaEvent_t start, stop;
  VDIT_CUDA_CHECK(cudaEventCreate(&start));
  VDIT_CUDA_CHECK(cudaEventCreate(&stop));
  VDIT_CUDA_CHECK(cudaEventRecord(start, stream(device)));
  for (int i = 0; i < repeats; ++i) gemm(g, device);
  VDIT_CUDA_CHECK(cudaEventRecord(stop, stream(device)));
  VDIT_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  VDIT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / repeats;
}

}  // namespace vdit::cuda
